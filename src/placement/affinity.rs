//! Locality for `each_after` stages: a task released by its predecessor starts on the host
//! where that predecessor ran (its files are there), as long as that host is up, open and
//! has a free slot now. Otherwise it is placed like any other task: locality never makes a
//! task wait. Pure.

use super::HostView;

/// The host a released task starts on at once, or `None` to queue it for placement.
pub fn host_for(hosts: &[HostView], predecessor_ran_on: Option<usize>) -> Option<usize> {
    let host = predecessor_ran_on?;
    (hosts.get(host)?.free() > 0).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::super::Liveness;
    use super::super::testing::up;
    use super::*;

    #[test]
    fn a_task_goes_where_its_predecessor_ran_while_that_host_has_room() {
        let mut hosts = vec![up(2), up(2)];
        assert_eq!(host_for(&hosts, Some(1)), Some(1));
        hosts[1].running = 2;
        assert_eq!(host_for(&hosts, Some(1)), None, "full: placed elsewhere");
    }

    #[test]
    fn a_host_down_or_gated_or_unknown_is_not_preferred() {
        let mut hosts = vec![up(2), up(2)];
        hosts[0].liveness = Liveness::Starting;
        assert_eq!(host_for(&hosts, Some(0)), None);
        hosts[0].liveness = Liveness::Gone;
        assert_eq!(host_for(&hosts, Some(0)), None);
        hosts[1].gated = true;
        assert_eq!(host_for(&hosts, Some(1)), None);
        assert_eq!(host_for(&hosts, Some(5)), None);
        assert_eq!(host_for(&hosts, None), None);
    }
}
