//! Table tests of [`routes`]: which plugins get a route, which instances become servers, and
//! the shares a route carries (a rollout's split, or the default).

use super::*;
use crate::model::{FileSet, Fleet};
use crate::plan::fixtures::inst;
use crate::plan::{Instance, RunState};
use std::net::Ipv4Addr;

/// A fleet behind the router: `crm` (own stickiness), `web`, `legacy` (DNS by its own
/// choice), `frozen` (suspended) and `notifier`, a BotMatrix fixed canary whose 1.1.0 folder
/// takes `canary_weight` %.
fn fleet(canary_weight: f64) -> Fleet {
    let mut files = FileSet::new();
    files.insert("plugsync.yaml".into(), b"traffic:\n  router: haproxy\n".to_vec());
    for (id, extra) in [
        ("crm", "traffic:\n  stickyBy: cookie:session\n"),
        ("web", ""),
        ("legacy", "traffic:\n  router: dns\n"),
        ("frozen", "suspended: true\n"),
    ] {
        let manifest = format!("id: {id}\nversion: 1.0.0\nruntime:\n  image: echo:1\n{extra}");
        files.insert(format!("plugins/{id}/plugin.yaml"), manifest.into_bytes());
    }
    for (version, weight) in [("1.0.0", String::new()), ("1.1.0", format!("canary_weight: {canary_weight}\n"))] {
        let manifest = format!("id: notifier\nversion: {version}\nruntime:\n  image: echo:{version}\n{weight}");
        files.insert(format!("plugins/notifier/v{version}/plugin.yaml"), manifest.into_bytes());
    }
    let loaded = crate::model::load(&files, None);
    assert!(loaded.is_valid(), "{:?}", loaded.errors().map(|d| d.to_string()).collect::<Vec<_>>());
    loaded.fleet
}

/// An instance of `plugin`: serving as told, running or exited, with address 10.0.0.`host`.
fn instance(plugin: &str, slot: Slot, id: &str, serving: bool, running: bool, host: Option<u8>) -> Instance {
    let mut i = inst("1.0.0", slot, true, serving, id);
    i.plugin = plugin.into();
    i.address = host.map(|h| IpAddr::V4(Ipv4Addr::new(10, 0, 0, h)));
    if !running {
        i.state = RunState::Exited;
    }
    i
}

/// `n` serving, addressed instances per slot.
fn serving(plugin: &str, slots: &[(Slot, u8)]) -> Vec<Instance> {
    let mut out = Vec::new();
    for &(slot, n) in slots {
        for k in 0..n {
            let host = out.len() as u8 + 1;
            out.push(instance(plugin, slot, &format!("{plugin}-{slot}-{k}"), true, true, Some(host)));
        }
    }
    out
}

fn route<'a>(routes: &'a [Route], plugin: &str) -> &'a Route {
    routes.iter().find(|r| r.plugin == plugin).unwrap_or_else(|| panic!("no route for {plugin}: {routes:?}"))
}

fn assert_shares(got: &[SlotShare], want: &[(Slot, f64)], context: &str) {
    assert_eq!(got.len(), want.len(), "{context}: {got:?}");
    for (slot, percent) in want {
        let found: f64 = got.iter().filter(|s| s.slot == *slot).map(|s| s.percent).sum();
        assert!((found - percent).abs() < 1e-9, "{context}: {slot} has {found} %, not {percent} %: {got:?}");
    }
}

#[test]
fn only_routed_plugins_that_are_not_suspended_get_a_route() {
    let fleet = fleet(10.0);
    // Every plugin has a serving, addressed instance, yet DNS and suspended ones stay out.
    let instances: Vec<Instance> = ["crm", "web", "legacy", "frozen", "notifier"]
        .iter()
        .enumerate()
        .map(|(n, id)| instance(id, Slot::Stable, &format!("{id}-0"), true, true, Some(n as u8 + 1)))
        .collect();
    for (name, instances) in [("with instances", instances), ("without instances", Vec::new())] {
        let routes = routes(&fleet, &instances, &Splits::new());
        let plugins: Vec<&str> = routes.iter().map(|r| r.plugin.as_str()).collect();
        assert_eq!(plugins, ["crm", "notifier", "web"], "{name}");
        let crm = route(&routes, "crm");
        assert_eq!((crm.port, crm.readiness.as_str()), (8080, "/health/ready"), "{name}");
        assert_eq!(crm.sticky, Some(StickyBy::Cookie("session".into())), "{name}: the manifest's stickiness");
        assert_eq!(route(&routes, "web").sticky, None, "{name}");
    }
    let none = routes(&fleet, &[], &Splits::new());
    assert!(none.iter().all(|r| r.servers.is_empty()), "no instance, no server: {none:?}");
}

/// The server an instance becomes: name, slot, last byte of its address.
type Expected = Option<(&'static str, Slot, u8)>;

#[test]
fn servers_are_the_serving_running_instances_with_an_address() {
    // (instance, the server it becomes: name, slot, address 10.0.0.n)
    let table: Vec<(Instance, Expected)> = vec![
        (
            instance("crm", Slot::Stable, "0123456789abcdef", true, true, Some(1)),
            Some(("stable-0123456789ab", Slot::Stable, 1)),
        ),
        (
            instance("crm", Slot::Canary, "fedcba9876543210", true, true, Some(2)),
            Some(("canary-fedcba987654", Slot::Canary, 2)),
        ),
        (instance("crm", Slot::B, "abc", true, true, Some(3)), Some(("b-abc", Slot::B, 3))),
        (
            instance("crm", Slot::Green, "exactly12chr", true, true, Some(4)),
            Some(("green-exactly12chr", Slot::Green, 4)),
        ),
        (instance("crm", Slot::Stable, "no-address-000", true, true, None), None),
        (instance("crm", Slot::Stable, "not-serving-000", false, true, Some(5)), None),
        (instance("crm", Slot::Stable, "exited-0000000", true, false, Some(6)), None),
        (instance("crm", Slot::Canary, "parked-0000000", false, false, Some(7)), None),
        (instance("web", Slot::Stable, "another-plugin", true, true, Some(8)), None),
    ];
    let instances: Vec<Instance> = table.iter().map(|(i, _)| i.clone()).collect();
    let routes = routes(&fleet(10.0), &instances, &Splits::new());
    let crm = route(&routes, "crm");
    let want: Vec<Server> = table
        .iter()
        .filter_map(|(_, s)| *s)
        .map(|(name, slot, host)| Server {
            name: name.into(),
            slot,
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)),
            port: 8080,
        })
        .collect();
    assert_eq!(crm.servers, want);
    let web = route(&routes, "web");
    assert_eq!(web.servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["stable-another-plug"]);
}

#[test]
fn shares_come_from_the_split_or_the_default() {
    struct Case {
        name: &'static str,
        plugin: &'static str,
        /// Serving, addressed instances per slot.
        slots: &'static [(Slot, u8)],
        canary_weight: f64,
        split: Option<Vec<SlotShare>>,
        shares: &'static [(Slot, f64)],
    }
    let split =
        |shares: &[(Slot, f64)]| Some(shares.iter().map(|&(slot, percent)| SlotShare { slot, percent }).collect());
    let cases = [
        Case {
            name: "default: each serving instance the same share",
            plugin: "crm",
            slots: &[(Slot::Stable, 3), (Slot::Canary, 1)],
            canary_weight: 10.0,
            split: None,
            shares: &[(Slot::Stable, 75.0), (Slot::Canary, 25.0)],
        },
        Case {
            name: "default: one each",
            plugin: "crm",
            slots: &[(Slot::Stable, 1), (Slot::Canary, 1)],
            canary_weight: 10.0,
            split: None,
            shares: &[(Slot::Stable, 50.0), (Slot::Canary, 50.0)],
        },
        Case {
            name: "default: A/B by instances",
            plugin: "crm",
            slots: &[(Slot::Stable, 1), (Slot::B, 3)],
            canary_weight: 10.0,
            split: None,
            shares: &[(Slot::Stable, 25.0), (Slot::B, 75.0)],
        },
        Case {
            name: "default: one slot takes everything",
            plugin: "web",
            slots: &[(Slot::Stable, 2)],
            canary_weight: 10.0,
            split: None,
            shares: &[(Slot::Stable, 100.0)],
        },
        Case {
            name: "default: nothing serves, no share",
            plugin: "web",
            slots: &[],
            canary_weight: 10.0,
            split: None,
            shares: &[],
        },
        Case {
            name: "a rollout's split whatever the counts",
            plugin: "crm",
            slots: &[(Slot::Stable, 3), (Slot::Canary, 2)],
            canary_weight: 10.0,
            split: split(&[(Slot::Stable, 90.0), (Slot::Canary, 10.0)]),
            shares: &[(Slot::Stable, 90.0), (Slot::Canary, 10.0)],
        },
        Case {
            name: "a split naming a slot without servers stays as is",
            plugin: "crm",
            slots: &[(Slot::Stable, 2)],
            canary_weight: 10.0,
            split: split(&[(Slot::Stable, 75.0), (Slot::Canary, 25.0)]),
            shares: &[(Slot::Stable, 75.0), (Slot::Canary, 25.0)],
        },
        Case {
            name: "fixed canary: its folder weights, not its counts",
            plugin: "notifier",
            slots: &[(Slot::Stable, 1), (Slot::Canary, 1)],
            canary_weight: 10.0,
            split: None,
            shares: &[(Slot::Stable, 90.0), (Slot::Canary, 10.0)],
        },
        Case {
            name: "fixed canary at 30 % with three stable instances",
            plugin: "notifier",
            slots: &[(Slot::Stable, 3), (Slot::Canary, 1)],
            canary_weight: 30.0,
            split: None,
            shares: &[(Slot::Stable, 70.0), (Slot::Canary, 30.0)],
        },
        Case {
            name: "fixed canary before anything serves",
            plugin: "notifier",
            slots: &[],
            canary_weight: 10.0,
            split: None,
            shares: &[(Slot::Stable, 90.0), (Slot::Canary, 10.0)],
        },
        Case {
            name: "fixed canary: a split still wins",
            plugin: "notifier",
            slots: &[(Slot::Stable, 1), (Slot::Canary, 1)],
            canary_weight: 10.0,
            split: split(&[(Slot::Stable, 40.0), (Slot::Canary, 60.0)]),
            shares: &[(Slot::Stable, 40.0), (Slot::Canary, 60.0)],
        },
    ];
    for c in cases {
        let fleet = fleet(c.canary_weight);
        let mut instances = serving(c.plugin, c.slots);
        // Neither an instance without an address nor one out of traffic counts.
        instances.push(instance(c.plugin, Slot::Canary, "pending-address", true, true, None));
        instances.push(instance(c.plugin, Slot::Canary, "unserved-00000", false, true, Some(200)));
        let splits: Splits = c.split.iter().map(|s| (c.plugin.to_string(), s.clone())).collect();
        let routes = routes(&fleet, &instances, &splits);
        let r = route(&routes, c.plugin);
        let counted: u8 = c.slots.iter().map(|(_, n)| n).sum();
        assert_eq!(r.servers.len(), usize::from(counted), "{}: {:?}", c.name, r.servers);
        if let Some(split) = &c.split {
            assert_eq!(&r.shares, split, "{}: the split is used as is", c.name);
        }
        assert_shares(&r.shares, c.shares, c.name);
        for other in routes.iter().filter(|r| r.plugin != c.plugin) {
            assert!(other.servers.is_empty(), "{}: {} got servers of {}", c.name, other.plugin, c.plugin);
        }
    }
}
