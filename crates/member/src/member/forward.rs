//! Client writes a follower forwards to the leader, gathered for the length of one input:
//! every write routed to the leader while the member handles one input (a turn of client
//! requests, a tick's re-sends) leaves in one [`PeerMessage::Forwards`], not one message
//! each. One message per turn instead of one per write is one frame, one wake-up of the
//! leader's reader and one turn of its core for the lot (the profile's thread hand-offs and
//! transport work were most of a forwarded put's cost), and the leader proposes them
//! together, so they share a slot.
//!
//! Nothing waits here across inputs: [`Member::drive`](super::Member) sends what was
//! gathered before the member's outputs are read, so batching never adds latency.

use super::Member;
use crate::peer::PeerMessage;
use paxos::multi::Command;

/// Commands in one forwarded message at most: bounds the leader's work for one message and
/// the message's size together with [`FORWARD_BYTES_MAX`].
pub(super) const FORWARD_COMMANDS_MAX: usize = 256;

/// Payload bytes in one forwarded message before it is sent and another begun (well under
/// the peer transport's frame bound; one command may be larger alone).
pub(super) const FORWARD_BYTES_MAX: usize = 1 << 20;

/// Writes gathered for the leader during the current input.
#[derive(Default)]
pub(super) struct ForwardOutbox {
    /// The member they go to.
    to: u64,
    commands: Vec<Command>,
    bytes: usize,
}

impl ForwardOutbox {
    /// Nothing gathered.
    pub(super) fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

impl Member {
    /// Forwards `command` to member `leader` with the other writes of this input.
    pub(super) fn forward(&mut self, leader: u64, command: Command) {
        if !self.forwards.commands.is_empty() && self.forwards.to != leader {
            self.flush_forwards();
        }
        self.forwards.to = leader;
        self.forwards.bytes += command.payload.len();
        self.forwards.commands.push(command);
        if self.forwards.commands.len() >= FORWARD_COMMANDS_MAX
            || self.forwards.bytes >= FORWARD_BYTES_MAX
        {
            self.flush_forwards();
        }
    }

    /// Sends what was gathered: one command alone as [`PeerMessage::Forward`] (what members
    /// built before batching read), more as one [`PeerMessage::Forwards`].
    pub(super) fn flush_forwards(&mut self) {
        let outbox = std::mem::take(&mut self.forwards);
        let mut commands = outbox.commands;
        debug_assert!(commands.len() <= FORWARD_COMMANDS_MAX);
        let message = match commands.len() {
            0 => return,
            1 => PeerMessage::Forward(commands.remove(0)),
            _ => PeerMessage::Forwards(commands),
        };
        self.send(outbox.to, message);
    }

    /// A follower's forwarded writes, as leader: proposed in order, in this one input, so
    /// they share the next slot. Not leader (any more), or the proposal queue is full: the
    /// rest are dropped, and each forwarder re-sends its own to whoever leads.
    pub(super) fn take_forwarded(&mut self, commands: Vec<Command>) {
        for command in commands.into_iter().take(FORWARD_COMMANDS_MAX) {
            if self.replica.propose(command).is_err() {
                break;
            }
        }
    }
}
