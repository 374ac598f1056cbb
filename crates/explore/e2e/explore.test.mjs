// The explorer in a real headless Chromium: walk the page as a learner would and assert on
// what it shows. Screenshots go to target/explore-e2e/.
//
// EXPLORE_BIN: the server to start (default: target/debug/synod, run as `synod explore --port 0`
// unless EXPLORE_ARGS says otherwise); it must print
// "explorer: http://127.0.0.1:PORT/". TRACE_BIN writes a simulator trace (default:
// target/debug/examples/sim_trace).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = path.resolve(import.meta.dirname, '../../..');
const bin = process.env.EXPLORE_BIN || path.join(root, 'target/debug/synod');
const traceBin = process.env.TRACE_BIN || path.join(root, 'target/debug/examples/sim_trace');
const shots = path.join(root, 'target/explore-e2e');
mkdirSync(shots, { recursive: true });

let server, base, browser;

before(async () => {
  const args = (process.env.EXPLORE_ARGS || 'explore --port 0').split(' ');
  server = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  base = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+\//);
      if (m) resolve(m[0]);
    });
    server.on('exit', (code) => reject(new Error(`explorer exited with ${code}`)));
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // Playwright runs headless with a fresh temporary profile of its own.
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function open(hash = '', viewport = { width: 1280, height: 800 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + hash);
  await page.waitForSelector('#position');
  await page.waitForFunction(() => document.querySelectorAll('.node-card').length >= 3);
  return { page, errors };
}

const position = (page) => page.textContent('#position');

async function stepUntil(page, predicate, max = 80) {
  for (let i = 0; i < max; i++) {
    if (await predicate()) return true;
    const before = await position(page);
    await page.click('#step');
    await page.waitForFunction((b) => document.querySelector('#position').textContent !== b, before);
  }
  return predicate();
}

// Starts guided scenario `id` and clicks "Next" until its last step.
async function playScenario(page, id) {
  await page.selectOption('#scenario', id);
  await page.click('#start-scenario');
  await page.waitForSelector('#scenario-panel:not([hidden])');
  while (!(await page.$eval('#scenario-next', (b) => b.disabled))) {
    const before = await page.textContent('#scenario-progress');
    await page.click('#scenario-next');
    await page.waitForFunction((b) => document.querySelector('#scenario-progress').textContent !== b, before);
  }
}

test('single-decree: propose, see the value chosen before anyone knows, then learned', async () => {
  const { page, errors } = await open();
  await page.fill('#value', 'x');
  await page.click('#propose');
  await page.waitForFunction(() => document.querySelector('#position').textContent.startsWith('step 1 '));
  assert.match(await page.textContent('#explain-text'), /n1 proposes 'x'/);
  let sawUnknown = false;
  const chosen = await stepUntil(page, async () => {
    const text = await page.textContent('#chosen');
    if (text.includes('no node knows it yet')) sawUnknown = true;
    return text.includes("slot 1: 'x'") && text.includes('known by n1, n2, n3');
  });
  assert.ok(chosen, 'the value is chosen and known by all');
  assert.ok(sawUnknown, 'the page showed the value chosen while no node knew it');
  assert.match(await page.textContent('.node-card[data-node="n2"]'), /'x' ✔ chosen/);
  await page.screenshot({ path: path.join(shots, 'synod-chosen.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('drop a message, crash and restart a node', async () => {
  const { page } = await open();
  await page.click('#propose');
  await stepUntil(page, async () => (await page.$$('.msg-row')).length >= 2);
  const rows = await page.$$eval('.msg-row', (rs) => rs.map((r) => r.dataset.id));
  await page.click(`.msg-row[data-id="${rows[0]}"] button[data-act="drop"]`);
  await page.waitForFunction((id) => !document.querySelector(`.msg-row[data-id="${id}"]`), rows[0]);
  assert.match(await page.textContent('#explain-text'), /The network loses/);
  await page.click('.node-card[data-node="n3"] button[data-act="crash"]');
  await page.waitForFunction(() => document.querySelector('.node-card[data-node="n3"]').classList.contains('down'));
  assert.match(await page.textContent('.node-card[data-node="n3"] .role'), /down/);
  assert.match(await page.textContent('#explain-text'), /n3 loses power/);
  await page.screenshot({ path: path.join(shots, 'crashed.png'), fullPage: true });
  await page.click('.node-card[data-node="n3"] button[data-act="restart"]');
  await page.waitForFunction(() => !document.querySelector('.node-card[data-node="n3"]').classList.contains('down'));
  assert.match(await page.textContent('#explain-text'), /n3 restarts from its disk/);
  await page.close();
});

test('rewind with the keyboard, and the URL reproduces the session', async () => {
  const { page } = await open();
  await page.click('#propose');
  for (let i = 0; i < 5; i++) await page.keyboard.press('s');
  await page.waitForFunction(() => document.querySelector('#position').textContent === 'step 6 / 6');
  const at6 = await page.textContent('#explain-text');
  await page.keyboard.press('b');
  await page.waitForFunction(() => document.querySelector('#position').textContent === 'step 5 / 6');
  assert.notEqual(await page.textContent('#explain-text'), at6);
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() => document.querySelector('#position').textContent === 'step 6 / 6');
  assert.equal(await page.textContent('#explain-text'), at6, 'forward again replays the same event');
  const url = page.url();
  assert.match(decodeURIComponent(url), /"do":"propose"/);
  const again = await open(url.slice(base.length));
  await again.page.waitForFunction(() => document.querySelector('#position').textContent === 'step 6 / 6');
  assert.equal(await again.page.textContent('#explain-text'), at6);
  assert.equal(await again.page.textContent('#node-cards'), await page.textContent('#node-cards'));
  await again.page.close();
  await page.close();
});

test('multi-paxos: a leader is elected and a client write is chosen', async () => {
  const { page, errors } = await open();
  await page.selectOption('#protocol', 'multi');
  await page.fill('#nodes', '5');
  await page.click('#new-session');
  await page.waitForFunction(() => document.querySelectorAll('.node-card').length === 5);
  assert.ok(await stepUntil(page, async () => (await page.$$('.node-card.leader')).length === 1, 60), 'a leader');
  await page.fill('#value', '42');
  await page.click('#propose');
  assert.ok(await stepUntil(page, async () => (await page.textContent('#ops')).includes('put x=42 → ok'), 80), 'the write completes');
  assert.match(await page.textContent('#chosen'), /slot 1: 'put x=42'/);
  assert.ok((await page.$$('#diagram line')).length > 10, 'the time-space diagram shows messages');
  await page.screenshot({ path: path.join(shots, 'multi-chosen.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('multi-paxos: a spare joins as a learner through a configuration change', async () => {
  const { page, errors } = await open();
  await page.selectOption('#protocol', 'multi');
  await page.fill('#nodes', '3');
  await page.fill('#spares', '1');
  await page.click('#new-session');
  await page.waitForFunction(() => document.querySelectorAll('.node-card').length === 4);
  assert.match(await page.textContent('.node-card[data-node="n4"]'), /outside/);
  assert.ok(await stepUntil(page, async () => (await page.$$('.node-card.leader')).length === 1, 60), 'a leader');
  await page.fill('#next-voters', '1,2,3');
  await page.fill('#next-learners', '4');
  await page.click('#reconfigure');
  await page.waitForFunction(() => /stop-sign/.test(document.querySelector('#explain-text').textContent));
  assert.ok(await stepUntil(page, async () => /learner/.test(await page.textContent('.node-card[data-node="n4"]')), 80), 'n4 becomes a learner');
  // A configuration naming a node that does not exist is refused, and said so.
  await page.fill('#next-voters', '1,2,3,5');
  await page.fill('#next-learners', '');
  await page.click('#reconfigure');
  await page.waitForFunction(() => !document.querySelector('#error').hidden);
  assert.match(await page.textContent('#error'), /no node n5/);
  await page.screenshot({ path: path.join(shots, 'multi-learner.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a trace from the simulator opens and steps', async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'synod-trace-')), 'seed5.trace.jsonl');
  execFileSync(traceBin, ['5', '3', 'all', '2000', file]);
  const { page } = await open();
  await page.setInputFiles('#trace-file', file);
  await page.waitForFunction(() => document.querySelector('#explain-text').textContent.startsWith('Trace opened'));
  assert.match(await page.textContent('#explain-text'), /seed 5, 3 nodes, faults all/);
  await page.click('#step');
  await page.waitForFunction(() => document.querySelector('#position').textContent.startsWith('step 1 '));
  assert.equal(await page.$eval('#error', (e) => e.hidden ? '' : e.textContent), '');
  await page.close();
});

test('usable at phone width', async () => {
  const { page } = await open('', { width: 390, height: 844 });
  await page.click('#propose');
  await page.click('#step');
  await page.waitForFunction(() => document.querySelector('#position').textContent.startsWith('step 2 '));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  await page.screenshot({ path: path.join(shots, 'phone.png'), fullPage: true });
  await page.close();
});

test('a guided scenario narrates real steps and can be taken over', async () => {
  const { page } = await open();
  await playScenario(page, 'hidden-choice');
  assert.match(await page.textContent('#chosen'), /slot 1: 'x'/);
  assert.match(await page.textContent('.node-card[data-node="n2"]'), /'x' ✔ chosen/);
  await page.screenshot({ path: path.join(shots, 'scenario-hidden-choice.png'), fullPage: true });
  await page.click('#scenario-close');
  await page.click('#step');
  assert.equal(await page.$eval('#scenario-panel', (p) => p.hidden), true);
  await page.close();
});

// "Break it": needs a server built with planted bugs (`cargo build -p synod --bin synod
// --features planted-bugs`). A new leader that ignores the values reported in promises
// overwrites a chosen value; the simulator's agreement check fires and the page shows it red.
test('break it: a planted bug, a crafted schedule, and the violation shown in red', async () => {
  const { page, errors } = await open();
  const meta = await page.evaluate(() => fetch('/api/meta').then((r) => r.json()));
  assert.ok(meta.planted_bugs_available, 'the explorer under test must be built with --features planted-bugs');
  await page.selectOption('#protocol', 'multi');
  await page.fill('#nodes', '3');
  await page.fill('#seed', '2');
  await page.selectOption('#bug', 'ignore-promised-values');
  await page.click('#new-session');
  await page.waitForFunction(() => document.querySelector('#position').textContent === 'step 0 / 0');
  assert.ok(await stepUntil(page, async () => (await page.$$('.node-card.leader')).length === 1, 200), 'a leader');
  const old = await page.$eval('.node-card.leader', (c) => c.dataset.node);
  const [a, b] = ['n1', 'n2', 'n3'].filter((n) => n !== old);
  await page.selectOption('#who', '1');
  await page.fill('#key', 'x');
  await page.fill('#value', '1');
  await page.click('#propose');
  const acceptRow = (to) => page.$(`.msg-row[data-kind="accept"]:has-text("${old} → ${to}"):has-text("slot 1 ")`);
  assert.ok(await stepUntil(page, async () => (await acceptRow(a)) !== null, 200), 'the leader sends Accept for slot 1');
  const click = async (row, what) => {
    const before = await position(page);
    await (await row.$(`button[data-act="${what}"]`)).click();
    await page.waitForFunction((p) => document.querySelector('#position').textContent !== p, before);
  };
  // Slot 1 reaches one follower; the other's Accept is lost.
  await click(await acceptRow(a), 'deliver');
  await click(await acceptRow(b), 'drop');
  assert.match(await page.textContent('#explain-text'), /The network loses Accept/);
  assert.ok(await stepUntil(page, async () => (await page.textContent(`.node-card[data-node="${old}"]`)).includes("'put x=1' ✔ chosen"), 200),
    'the leader learns slot 1 chosen');
  // The leader crashes before telling anyone; the follower that missed slot 1 takes over.
  const cardButton = async (node, what) => {
    const before = await position(page);
    await page.click(`.node-card[data-node="${node}"] button[data-act="${what}"]`);
    await page.waitForFunction((p) => document.querySelector('#position').textContent !== p, before);
  };
  await cardButton(old, 'crash');
  await cardButton(b, 'timer');
  assert.ok(await stepUntil(page, async () => (await page.getAttribute(`.node-card[data-node="${b}"]`, 'class')).includes('leader'), 200), `${b} leads`);
  assert.equal(await page.$eval('#violations', (v) => v.hidden), true, 'nothing broken yet');
  await page.selectOption('#who', '2');
  await page.fill('#key', 'y');
  await page.fill('#value', '2');
  await page.click('#propose');
  assert.ok(await stepUntil(page, async () => (await page.textContent('#violations')).includes('handed out'), 300),
    'the simulator reports the agreement violation');
  const box = await page.$eval('#violations', (v) => ({
    hidden: v.hidden, text: v.textContent, border: getComputedStyle(v).borderTopColor, events: v.querySelectorAll('li').length,
  }));
  assert.equal(box.hidden, false);
  assert.equal(box.border, 'rgb(179, 38, 30)', 'drawn in red');
  assert.match(box.text, /Safety violated/);
  assert.match(box.text, /agreement at step \d+: .*slot 1/);
  assert.match(box.text, /put x=1/);
  assert.ok(box.events > 0, 'the events that led to it are listed');
  // Among them, the schedule's choices made by hand: the lost Accept, the crash, the timer.
  const byHand = await page.$$eval('#violations li.by-hand', (ls) => ls.map((l) => l.textContent));
  assert.ok(byHand.some((t) => /The network loses Accept .* slot 1 /.test(t)), byHand.join('\n'));
  assert.ok(byHand.some((t) => t.startsWith(`${old} loses power`)), byHand.join('\n'));
  assert.ok(byHand.some((t) => t.startsWith(`${b}'s election timer fires`)), byHand.join('\n'));
  await page.screenshot({ path: path.join(shots, 'break-it.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('the FLP scenario: ballots keep rising, nothing is chosen, disk writes finished by hand', async () => {
  const { page, errors } = await open();
  await page.selectOption('#scenario', 'flp');
  await page.click('#start-scenario');
  await page.waitForSelector('#scenario-panel:not([hidden])');
  const promised = [];
  while (!(await page.$eval('#scenario-next', (b) => b.disabled))) {
    const before = await page.textContent('#scenario-progress');
    await page.click('#scenario-next');
    await page.waitForFunction((b) => document.querySelector('#scenario-progress').textContent !== b, before);
    const p = await page.$eval('.node-card[data-node="n2"] dd', (d) => d.textContent);
    if (promised[promised.length - 1] !== p) promised.push(p);
  }
  // n2 promised ever higher ballots, and the value never got chosen.
  assert.deepEqual(promised.filter((p) => p !== 'none'), ['1.1', '1.3', '2.1', '3.3', '4.1', '5.3']);
  assert.match(await page.textContent('#chosen'), /nothing chosen yet/);
  assert.match(await page.textContent('#log'), /By hand, out of turn: n2's disk has made durable its promise of 5.3/);
  await page.screenshot({ path: path.join(shots, 'scenario-flp.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('single-decree: finish a disk write by hand', async () => {
  const { page, errors } = await open();
  await page.click('#propose');
  await page.waitForSelector('.node-card[data-node="n1"] button[data-act="persist"]');
  assert.equal(await page.$('.node-card[data-node="n2"] button[data-act="persist"]'), null, 'n2 has nothing to write');
  await page.click('.node-card[data-node="n1"] button[data-act="persist"]');
  await page.waitForFunction(() => document.querySelector('#position').textContent.startsWith('step 2 '));
  assert.match(await page.textContent('#explain-text'), /^By hand, out of turn: n1's disk has made durable the ballot 1\.1/);
  assert.equal((await page.$$('.msg-row[data-kind="prepare"]')).length, 2, 'the Prepares left');
  assert.deepEqual(errors, []);
  await page.close();
});

test('fast paxos: a collision recovered by the coordinator; flexible quorums must intersect', async () => {
  const { page, errors } = await open();
  await playScenario(page, 'fast-collision');
  // One value, chosen in the recovery round that followed the split fast round.
  assert.match(await page.textContent('#chosen'), /slot 1: '[xy]' chosen at step \d+ \(ballot 0\.1r\)/);
  assert.match(await page.textContent('.node-card[data-node="n1"]'), /collisions seen: 1/);
  assert.match(await page.textContent('#log'), /sees a collision/);
  await page.screenshot({ path: path.join(shots, 'scenario-fast-collision.png'), fullPage: true });
  await page.click('#scenario-close');
  // Flexible quorums: phase 1 of 3 and phase 2 of 2 out of 5 need not meet, and are refused.
  await page.selectOption('#protocol', 'multi');
  await page.fill('#nodes', '5');
  await page.selectOption('#bug', '');
  await page.fill('#quorums', 'flexible:3,2');
  await page.click('#new-session');
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error'), /^quorums: /);
  await page.fill('#quorums', 'flexible:4,2');
  await page.click('#new-session');
  await page.waitForFunction(() => document.querySelector('#position').textContent === 'step 0 / 0');
  assert.ok(await stepUntil(page, async () => (await page.$$('.node-card.leader')).length === 1, 200), 'a leader, elected by four');
  assert.deepEqual(errors, []);
  await page.close();
});

test('epaxos: two replicas propose conflicting writes; every replica executes them in one order', async () => {
  const { page, errors } = await open();
  await playScenario(page, 'epaxos-conflict');
  const orders = [];
  for (const n of ['n1', 'n2', 'n3']) {
    const m = (await page.textContent(`.node-card[data-node="${n}"]`)).match(/executed: ([^\n]*?put x=\d[^\n]*?put x=\d)/);
    assert.ok(m, `${n} executed both writes`);
    orders.push(m[1]);
  }
  assert.ok(orders.every((o) => o === orders[0]), orders.join(' | '));
  assert.match(await page.textContent('#log'), /slow path/);
  assert.equal(await page.$eval('#violations', (v) => v.hidden), true);
  await page.screenshot({ path: path.join(shots, 'scenario-epaxos-conflict.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('paxos commit: the transaction manager crashes mid-vote and a second leader still decides', async () => {
  const { page, errors } = await open();
  await playScenario(page, 'commit-tm-crash');
  const card = (n) => page.textContent(`.node-card[data-node="${n}"]`);
  for (const rm of ['n3', 'n4', 'n5']) assert.match(await card(rm), /t1: Committed/, `${rm} learned the outcome`);
  assert.match(await card('n1'), /down/, 'n1, the transaction manager, is down');
  assert.doesNotMatch(await card('n1'), /t1: Committed/, 'n1 decided nothing');
  const log = await page.textContent('#log');
  assert.match(log, /n1 loses power/);
  assert.match(log, /n2, a leader, has decided t1: Committed/);
  assert.equal(await page.$$eval('#chosen li[data-slot]', (l) => l.length), 3, 'one chosen instance per RM');
  assert.equal(await page.$eval('#violations', (v) => v.hidden), true);
  await page.screenshot({ path: path.join(shots, 'scenario-commit-tm-crash.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('cheap paxos: auxiliaries step in for a dead main, then go idle after the stop-sign', async () => {
  const { page, errors } = await open();
  await playScenario(page, 'cheap-auxiliary');
  for (const aux of ['n4', 'n5']) {
    assert.match(await page.textContent(`.node-card[data-node="${aux}"]`), /auxiliary/, `${aux} is an auxiliary`);
  }
  const chosen = await page.textContent('#chosen');
  assert.match(chosen, /'put x=1'/);
  assert.match(chosen, /stop-sign: next voters/);
  assert.match(chosen, /'put x=2'/);
  assert.equal(await page.$eval('#violations', (v) => v.hidden), true);
  await page.screenshot({ path: path.join(shots, 'scenario-cheap-auxiliary.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('disk paxos: a disk fails mid-write, a majority of disks decides; break it and two values are decided', async () => {
  const { page, errors } = await open();
  await playScenario(page, 'disk-mid-write');
  const card = (n) => page.textContent(`.node-card[data-node="${n}"]`);
  for (const p of ['n1', 'n2', 'n3']) assert.match(await card(p), /decided 'a'/, `${p} decided n1's value`);
  assert.match(await card('d3'), /n1's block: torn/, 'the write cut off by the failure tore the block');
  assert.equal(await page.textContent('.node-card[data-node="d1"] button[data-act="crash"]'), 'Fail disk');
  assert.match(await page.textContent('#log'), /d3 cannot return n1's block/);
  assert.equal(await page.$eval('#violations', (v) => v.hidden), true);
  await page.screenshot({ path: path.join(shots, 'scenario-disk-mid-write.png'), fullPage: true });
  // Break it: once every processor recovered, n1 is cut off from d2 and d3 (nodes 5, 6), n2
  // from d1 (node 4). Deciding after one disk, each decides its own input.
  const session = {
    spec: { protocol: 'disk', nodes: 3, seed: 1, bug: 'decide-without-disk-majority' },
    actions: [{ do: 'step', n: 20 }, { do: 'cut', from: 1, to: 5 }, { do: 'cut', from: 1, to: 6 }, { do: 'cut', from: 2, to: 4 },
      { do: 'propose', value: 'a', node: 1 }, { do: 'propose', value: 'b', node: 2 }, { do: 'step', n: 150 }],
  };
  await page.goto(base + '#' + encodeURIComponent(JSON.stringify(session)));
  await page.waitForSelector('#violations:not([hidden])');
  const shown = await page.textContent('#violations');
  assert.match(shown, /agreement/);
  assert.match(shown, /n1 learned 'a', but 'b' was chosen/);
  assert.match(await card('n2'), /decided 'b'/);
  await page.screenshot({ path: path.join(shots, 'break-it-disk.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});
