//! Least-load: the host with the smallest (running + background load) / (slots × weight).

use super::HostView;
use super::fifo::ChooseHost;

#[derive(Debug, Default)]
pub struct LeastLoad;

/// How loaded a host would be relative to its capacity; lower is better.
pub fn pressure(host: &HostView) -> f64 {
    let capacity = f64::from(host.slots.max(1)) * host.weight.max(f64::MIN_POSITIVE);
    (f64::from(host.running) + host.load.max(0.0)) / capacity
}

impl ChooseHost for LeastLoad {
    fn choose(&mut self, hosts: &[HostView]) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, host) in hosts.iter().enumerate() {
            if host.free() == 0 {
                continue;
            }
            let p = pressure(host);
            if best.is_none_or(|(_, b)| p < b) {
                best = Some((i, p));
            }
        }
        best.map(|(host, _)| host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::fifo::Fifo;
    use crate::placement::testing::*;

    #[test]
    fn fills_by_relative_load() {
        let mut p = Fifo::new(LeastLoad);
        push_n(&mut p, 6);
        let mut hosts = vec![up(4), up(4)];
        hosts[1].weight = 2.0;
        let placed = place_all(&mut p, &mut hosts);
        let on_fast = placed.iter().filter(|&&(_, h)| h == 1).count();
        assert_eq!(
            on_fast, 4,
            "the weight-2 host takes twice the share: {placed:?}"
        );
    }

    #[test]
    fn background_load_steers_work_away() {
        let mut p = Fifo::new(LeastLoad);
        push_n(&mut p, 4);
        let mut hosts = vec![up(4), up(4)];
        hosts[0].load = 4.0;
        let placed = place_all(&mut p, &mut hosts);
        assert_eq!(placed.iter().filter(|&&(_, h)| h == 1).count(), 4);
    }
}
