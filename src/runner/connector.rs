//! Opening connections at scale: which host gets a connection next, and whether one may
//! open now. The dispatcher asks and reports back; this module only counts. No I/O.
//!
//! Every SSH connection is a thread, a TCP socket and a socketpair, so an inventory of
//! 10,000 hosts opened up front is 10,000 threads and 30,000 descriptors, however few the
//! tasks. Instead:
//! - at most [`MAX_IN_FLIGHT`] connection attempts run at once, and the next host is
//!   opened, in inventory order, as one of them answers; every host gets its first
//!   connection before any gets a second, and reconnects come last;
//! - no host beyond those already connected is opened once they can hold every task left
//!   (except under consistent-hash, whose placement is defined over every host);
//! - the connections never hold more descriptors than the soft `RLIMIT_NOFILE` leaves, after
//!   what dts had open when the run started and [`SPARE_FDS`] for the store and reports.
//!   If the system still says EMFILE, the budget shrinks to what is open then.

use std::collections::VecDeque;

/// Connection attempts at once. Each is a thread in TCP connect, the handshake or the
/// first probe, and `connect::Handshakes` lets 32 connect and handshake at once (8 per
/// server, under sshd's `MaxStartups`): a thread beyond those only waits for a turn, and
/// one that waits past its connect timeout fails a host that did nothing wrong. So as
/// many as there are handshake turns, which keeps threads and sockets in the dozens
/// whatever the inventory, and still tries 32 dead hosts per connect timeout.
pub const MAX_IN_FLIGHT: usize = 32;
/// Descriptors an SSH connection holds: its TCP socket and its wake-up socketpair, and
/// one more while it reads known_hosts or a key file.
pub const CONN_FDS: u64 = 4;
/// Descriptors a running task holds: its stdout and stderr files in the run store.
pub const TASK_FDS: u64 = 2;
/// Descriptors kept free for the rest of dts: the store's database and journal, the
/// joblog, grouped output read back, the end report.
pub const SPARE_FDS: u64 = 32;

/// What a connection to a host costs in descriptors, with `channels` tasks on it at most.
pub fn conn_fds(channels: u32) -> u64 {
    CONN_FDS + TASK_FDS * u64::from(channels)
}

/// Whether a connection of `fds` would take the descriptors held past the budget. With
/// nothing held one connection always may open, so every host can be tried.
fn over(held: u64, fds: u64, budget: u64) -> bool {
    held > 0 && held + fds > budget
}

/// What stops the next connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Open a connection to this host, holding this many descriptors.
    Open(usize, u64),
    /// Nothing wants a connection.
    Idle,
    /// [`MAX_IN_FLIGHT`] attempts are running.
    InFlight,
    /// A host wants one but the descriptor budget is spent.
    Fds,
}

/// The opening queue and its counters.
#[derive(Debug)]
pub struct Connector {
    hosts: usize,
    /// The first host never tried; hosts are first tried in inventory order.
    fresh: usize,
    /// Hosts already up that want another connection (after the fresh ones: every host
    /// gets one connection before any gets a second, to spread the tasks).
    more: VecDeque<usize>,
    /// Hosts due another attempt: reconnects, hosts that waited for descriptors (last).
    retry: VecDeque<usize>,
    queued_more: Vec<bool>,
    queued_retry: Vec<bool>,
    in_flight: usize,
    fds_held: u64,
    budget: u64,
    /// The soft open-file limit, to name in the note.
    soft_limit: u64,
}

impl Connector {
    /// A connector for `hosts` hosts, under `soft_limit` descriptors of which `in_use`
    /// are taken already.
    pub fn new(hosts: usize, soft_limit: u64, in_use: u64) -> Connector {
        Connector {
            hosts,
            fresh: 0,
            more: VecDeque::new(),
            retry: VecDeque::new(),
            queued_more: vec![false; hosts],
            queued_retry: vec![false; hosts],
            in_flight: 0,
            fds_held: 0,
            budget: soft_limit.saturating_sub(in_use + SPARE_FDS),
            soft_limit,
        }
    }

    pub fn soft_limit(&self) -> u64 {
        self.soft_limit
    }

    /// Whether every host has been tried at least once.
    pub fn all_tried(&self) -> bool {
        self.fresh >= self.hosts
    }

    /// Host `h`, up, wants another connection.
    pub fn want_more(&mut self, h: usize) {
        if !std::mem::replace(&mut self.queued_more[h], true) {
            self.more.push_back(h);
        }
    }

    /// Host `h` is due another attempt.
    pub fn want_retry(&mut self, h: usize) {
        if !std::mem::replace(&mut self.queued_retry[h], true) {
            self.retry.push_back(h);
        }
    }

    /// The next connection to open. `cost(h)` is what a connection to `h` would hold in
    /// descriptors, or `None` if `h` no longer wants one (it leaves the queue). Fresh hosts
    /// are offered only when `fresh_too`.
    pub fn next(&mut self, fresh_too: bool, mut cost: impl FnMut(usize) -> Option<u64>) -> Next {
        if self.in_flight >= MAX_IN_FLIGHT {
            return Next::InFlight;
        }
        while fresh_too && self.fresh < self.hosts {
            let h = self.fresh;
            match cost(h) {
                None => self.fresh += 1,
                Some(fds) if over(self.fds_held, fds, self.budget) => return Next::Fds,
                Some(fds) => {
                    self.fresh += 1;
                    return Next::Open(h, fds);
                }
            }
        }
        if let Some(next) = Self::next_queued(
            &mut self.more,
            &mut self.queued_more,
            self.fds_held,
            self.budget,
            &mut cost,
        ) {
            return next;
        }
        Self::next_queued(
            &mut self.retry,
            &mut self.queued_retry,
            self.fds_held,
            self.budget,
            &mut cost,
        )
        .unwrap_or(Next::Idle)
    }

    fn next_queued(
        queue: &mut VecDeque<usize>,
        queued: &mut [bool],
        held: u64,
        budget: u64,
        cost: &mut impl FnMut(usize) -> Option<u64>,
    ) -> Option<Next> {
        while let Some(&h) = queue.front() {
            match cost(h) {
                None => {}
                Some(fds) if over(held, fds, budget) => return Some(Next::Fds),
                Some(fds) => {
                    queue.pop_front();
                    queued[h] = false;
                    return Some(Next::Open(h, fds));
                }
            }
            queue.pop_front();
            queued[h] = false;
        }
        None
    }

    /// A connection holding `fds` started connecting.
    pub fn opened(&mut self, fds: u64) {
        self.in_flight += 1;
        self.fds_held += fds;
    }

    /// A connection attempt ended, up or failed.
    pub fn answered(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A connection holding `fds` closed.
    pub fn closed(&mut self, fds: u64) {
        self.fds_held = self.fds_held.saturating_sub(fds);
    }

    /// The system ran out of descriptors although the budget had room: the budget becomes
    /// what is held now, but never less than `floor` (one connection), so a host can
    /// always be tried again. Returns whether anything of ours is open to wait for.
    pub fn out_of_fds(&mut self, floor: u64) -> bool {
        self.budget = self.budget.min(self.fds_held).max(floor);
        self.fds_held > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: &mut Connector, fresh: bool, cost: impl Fn(usize) -> Option<u64>) -> Vec<usize> {
        let mut opened = Vec::new();
        while let Next::Open(h, fds) = c.next(fresh, &cost) {
            c.opened(fds);
            opened.push(h);
        }
        opened
    }

    #[test]
    fn at_most_max_in_flight_attempts_then_one_per_answer() {
        let mut c = Connector::new(10_000, 1 << 20, 10);
        let first = drain(&mut c, true, |_| Some(20));
        assert_eq!(first, (0..MAX_IN_FLIGHT).collect::<Vec<_>>());
        assert_eq!(c.next(true, |_| Some(20)), Next::InFlight);
        c.answered();
        assert_eq!(drain(&mut c, true, |_| Some(20)), [MAX_IN_FLIGHT]);
    }

    #[test]
    fn the_descriptor_budget_bounds_connections() {
        // 1024 - 10 in use - 32 spare = 982 descriptors: 49 connections of 20.
        let mut c = Connector::new(1000, 1024, 10);
        let mut opened = 0;
        loop {
            match c.next(true, |_| Some(20)) {
                Next::Open(_, fds) => {
                    c.opened(fds);
                    c.answered();
                    opened += 1;
                }
                Next::Fds => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(opened, 49);
        c.closed(20);
        assert!(matches!(c.next(true, |_| Some(20)), Next::Open(49, 20)));
    }

    #[test]
    fn fresh_hosts_first_then_more_connections_then_retries() {
        let mut c = Connector::new(4, 1 << 20, 0);
        c.want_retry(3);
        c.want_more(1);
        c.want_more(1);
        assert_eq!(drain(&mut c, true, |_| Some(1)), [0, 1, 2, 3, 1, 3]);
        assert!(c.all_tried());
    }

    #[test]
    fn no_fresh_host_when_the_tasks_fit() {
        let mut c = Connector::new(4, 1 << 20, 0);
        c.want_retry(2);
        assert_eq!(drain(&mut c, false, |_| Some(1)), [2]);
        assert!(!c.all_tried());
    }

    #[test]
    fn hosts_that_no_longer_want_a_connection_leave_the_queue() {
        let mut c = Connector::new(3, 1 << 20, 0);
        c.want_more(0);
        c.want_more(2);
        assert_eq!(drain(&mut c, false, |h| (h != 0).then_some(1)), [2]);
        assert_eq!(c.next(false, |_| Some(1)), Next::Idle);
    }

    #[test]
    fn running_out_of_descriptors_shrinks_the_budget_to_what_is_held() {
        let mut c = Connector::new(10, 1 << 20, 0);
        for _ in 0..3 {
            let Next::Open(_, fds) = c.next(true, |_| Some(20)) else {
                panic!()
            };
            c.opened(fds);
        }
        assert!(c.out_of_fds(20));
        assert_eq!(c.next(true, |_| Some(20)), Next::Fds);
        c.closed(20);
        assert!(matches!(c.next(true, |_| Some(20)), Next::Open(3, 20)));
        let mut empty = Connector::new(10, 1 << 20, 0);
        assert!(!empty.out_of_fds(20));
        assert!(matches!(empty.next(true, |_| Some(20)), Next::Open(0, 20)));
    }
}
