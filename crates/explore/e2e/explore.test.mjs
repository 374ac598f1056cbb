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
  await page.selectOption('#scenario', 'hidden-choice');
  await page.click('#start-scenario');
  await page.waitForSelector('#scenario-panel:not([hidden])');
  while (!(await page.$eval('#scenario-next', (b) => b.disabled))) {
    const before = await page.textContent('#scenario-progress');
    await page.click('#scenario-next');
    await page.waitForFunction((b) => document.querySelector('#scenario-progress').textContent !== b, before);
  }
  assert.match(await page.textContent('#chosen'), /slot 1: 'x'/);
  assert.match(await page.textContent('.node-card[data-node="n2"]'), /'x' ✔ chosen/);
  await page.screenshot({ path: path.join(shots, 'scenario-hidden-choice.png'), fullPage: true });
  await page.click('#scenario-close');
  await page.click('#step');
  assert.equal(await page.$eval('#scenario-panel', (p) => p.hidden), true);
  await page.close();
});
