//! The explorer: drive the real Paxos core step by step from a browser.
