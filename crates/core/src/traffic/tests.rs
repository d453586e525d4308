use super::haproxy::{config, runtime_commands, weight_commands, RouterPorts};
use super::*;
use std::net::Ipv4Addr;

fn server(slot: Slot, n: u8) -> Server {
    Server { name: format!("{}-{n}", slot.as_str()), slot, address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), port: 8080 }
}

fn route(stable: u8, canary: u8, canary_percent: f64) -> Route {
    let mut servers: Vec<Server> = (1..=stable).map(|n| server(Slot::Stable, n)).collect();
    servers.extend((1..=canary).map(|n| server(Slot::Canary, 100 + n)));
    Route {
        plugin: "crm".into(),
        port: 8080,
        base_path: None,
        readiness: "/health/ready".into(),
        sticky: None,
        shares: vec![
            SlotShare { slot: Slot::Stable, percent: 100.0 - canary_percent },
            SlotShare { slot: Slot::Canary, percent: canary_percent },
        ],
        servers,
    }
}

fn share(route: &Route, slot: Slot) -> f64 {
    route.effective_shares().into_iter().find(|(s, _)| *s == slot).map_or(0.0, |(_, p)| p)
}

#[test]
fn slot_shares_are_exact_whatever_the_replica_counts() {
    // (stable instances, canary instances, canary percent, tolerance in points)
    let table: [(u8, u8, f64, f64); 10] = [
        (3, 1, 10.0, 0.2),
        (3, 1, 25.0, 0.2),
        (3, 1, 50.0, 0.2),
        (3, 1, 1.0, 0.01),
        (1, 1, 1.0, 0.01),
        (3, 1, 33.3, 0.05),
        (10, 1, 5.0, 0.2),
        (1, 3, 90.0, 0.2),
        (2, 2, 100.0, 0.0),
        (4, 1, 0.0, 0.0),
    ];
    for (stable, canary, percent, tolerance) in table {
        let r = route(stable, canary, percent);
        let got = share(&r, Slot::Canary);
        assert!(
            (got - percent).abs() <= tolerance,
            "{stable} stable + {canary} canary at {percent} %: canary gets {got:.3} % ({:?})",
            r.weights()
        );
        assert!(r.weights().iter().all(|(_, w)| *w <= MAX_WEIGHT));
    }
}

#[test]
fn a_slot_with_a_share_keeps_a_weight_and_one_without_gets_none() {
    let r = route(3, 1, 0.1);
    let weights = r.weights();
    assert_eq!(weights.last().map(|(_, w)| *w), Some(1), "{weights:?}");
    let none = route(3, 1, 0.0);
    assert_eq!(none.weights().last().map(|(_, w)| *w), Some(0));
    let empty_slot = Route { servers: vec![server(Slot::Stable, 1)], ..route(1, 0, 30.0) };
    assert_eq!(
        empty_slot.weights(),
        vec![("stable-1".to_string(), MAX_WEIGHT)],
        "a slot without servers takes nothing"
    );
}

#[test]
fn raising_the_canary_share_only_moves_weight_towards_the_canary() {
    let steps = [1.0, 5.0, 10.0, 25.0, 33.0, 50.0, 75.0, 99.0, 100.0];
    let sticky = |stable, canary, p| Route {
        sticky: Some(StickyBy::Header("X-Correlation-Id".into())),
        ..route(stable, canary, p)
    };
    for (stable, canary) in [(3u8, 1u8), (1, 1), (1, 3), (5, 2)] {
        let weights: Vec<Vec<u16>> =
            steps.iter().map(|p| sticky(stable, canary, *p).weights().into_iter().map(|(_, w)| w).collect()).collect();
        for pair in weights.windows(2) {
            for (i, (before, after)) in pair[0].iter().zip(&pair[1]).enumerate() {
                let is_canary = i >= usize::from(stable);
                assert!(
                    if is_canary { after >= before } else { after <= before },
                    "{stable}+{canary}: server {i} went {before} → {after} as the canary share rose"
                );
            }
        }
    }
}

#[test]
fn sticky_by_reads_header_and_cookie() {
    let table: [(&str, Option<StickyBy>); 8] = [
        ("header:X-Correlation-Id", Some(StickyBy::Header("X-Correlation-Id".into()))),
        ("cookie:session", Some(StickyBy::Cookie("session".into()))),
        (" header : X-Tenant-ID ", Some(StickyBy::Header("X-Tenant-ID".into()))),
        ("header:", None),
        ("query:id", None),
        ("header:a b", None),
        ("cookie:é", None),
        ("", None),
    ];
    for (text, want) in table {
        assert_eq!(StickyBy::parse(text).ok(), want, "{text:?}");
    }
    assert_eq!(StickyBy::Header("X-Tenant-ID".into()).to_string(), "header:X-Tenant-ID");
}

#[test]
fn weights_change_at_runtime_and_servers_need_a_reload() {
    let at10 = [route(3, 1, 10.0)];
    let at50 = [route(3, 1, 50.0)];
    assert!(!needs_reload(&at10, &at50), "a weight change is a runtime command");
    assert!(!needs_reload(&at10, &[route(3, 2, 10.0)]), "a new server is a runtime command");
    let mut moved = route(3, 1, 10.0);
    moved.readiness = "/ready".into();
    assert!(needs_reload(&at10, &[moved]), "a new health path is a reload");
    let sticky = [Route { sticky: Some(StickyBy::Cookie("s".into())), ..route(3, 1, 10.0) }];
    assert!(needs_reload(&at10, &sticky), "stickiness changes the balance algorithm");
    let commands = weight_commands(&at50);
    assert_eq!(commands.len(), 4);
    assert!(commands[3].starts_with("set server be_crm/canary-101 weight "), "{commands:?}");
}

#[test]
fn config_routes_each_plugin_by_host_on_its_port() {
    let mut search = route(1, 0, 0.0);
    search.plugin = "search".into();
    search.port = 9000;
    search.sticky = Some(StickyBy::Header("X-Tenant-ID".into()));
    let mut billing = route(1, 0, 0.0);
    billing.plugin = "billing".into();
    let text = config(&[route(3, 1, 25.0), search, billing], &RouterPorts::default());
    for line in [
        "frontend fe_8080\n  bind :8080\n  log-format \"%b %s %ST %Ta %Tr\"\n  use_backend be_crm if { req.hdr(host),field(1,:),lower -m str crm }",
        "  use_backend be_billing if { req.hdr(host),field(1,:),lower -m str billing }",
        // Alone on its port: no Host needed.
        "frontend fe_9000\n  bind :9000\n  log-format \"%b %s %ST %Ta %Tr\"\n  http-request set-var(txn.bucket) req.hdr(X-Tenant-ID)",
        "option idle-close-on-response",
        "backend be_crm\n  balance roundrobin\n  option httpchk GET /health/ready\n  server stable-1 10.0.0.1:8080 weight ",
        // Sticky: a bucket per request, a backend per slot.
        "  http-request set-var(txn.bucket) req.hdr(X-Tenant-ID),crc32(1),mod(10000) if { req.hdr(X-Tenant-ID) -m found }\n",
        "  use_backend be_search.canary if { var(txn.bucket),sub(proc.split.search.canary) -m int lt 0 }\n",
        "  default_backend be_search.stable\n",
        "  set-var proc.split.search.stable int(10000)\n  set-var proc.split.search.canary int(10000)\n",
        "backend be_search.stable\n  balance hash req.hdr(X-Tenant-ID)\n  hash-type consistent\n  option httpchk GET /health/ready\n  server stable-1 10.0.0.1:8080 weight 256\n",
        "backend be_search.canary\n  balance hash req.hdr(X-Tenant-ID)\n",
        "stats socket ipv4@0.0.0.0:9999 level admin",
        "use-service prometheus-exporter",
    ] {
        assert!(text.contains(line), "missing:\n{line}\nin:\n{text}");
    }
}

#[test]
fn servers_come_and_go_at_runtime_and_a_deletion_may_wait() {
    let old = [route(3, 1, 10.0)];
    let new = [route(2, 2, 25.0)];
    let commands = runtime_commands(&old, &new);
    let texts: Vec<&str> = commands.iter().map(|c| c.text.as_str()).collect();
    let added = texts.iter().position(|t| t.starts_with("add server be_crm/canary-102 10.0.0.102:8080 weight "));
    let enabled = texts.iter().position(|t| *t == "enable server be_crm/canary-102");
    let maint = texts.iter().position(|t| *t == "set server be_crm/stable-3 state maint");
    let deleted = texts.iter().position(|t| *t == "del server be_crm/stable-3");
    assert!(added < enabled && enabled < maint && maint < deleted && added.is_some(), "{texts:#?}");
    assert!(texts.contains(&"enable health be_crm/canary-102"), "{texts:#?}");
    assert_eq!(texts.iter().filter(|t| t.starts_with("set server be_crm/") && t.contains(" weight ")).count(), 4);
    assert_eq!(
        commands.iter().filter(|c| c.may_wait).map(|c| c.text.as_str()).collect::<Vec<_>>(),
        ["del server be_crm/stable-3"]
    );
    assert!(
        runtime_commands(&new, &new).iter().all(|c| c.text.contains(" weight ")),
        "nothing but weights when the servers stay"
    );
}

#[test]
fn shares_are_read_back_from_the_runtime_state() {
    let answer = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight\n\
                  3 be_crm 1 stable-aaa 10.0.0.1 2 0 256 256\n\
                  3 be_crm 2 canary-bbb 10.0.0.2 2 0 28 28\n\
                  3 be_crm 3 stable-ccc 10.0.0.3 2 1 256 256\n\
                  4 be_web 1 weird 10.0.0.4 2 0 1 1\n\
                  garbage line\n";
    let shares = haproxy::shares_from_state(answer);
    let crm = &shares["crm"];
    let canary = crm.iter().find(|(s, _)| *s == Slot::Canary).map(|(_, p)| *p).unwrap_or_default();
    assert!((canary - 28.0 * 100.0 / 284.0).abs() < 1e-9, "the server in maintenance counts for nothing: {crm:?}");
    assert!(!shares.contains_key("web"), "a server name without a slot is skipped: {shares:?}");
    assert!(haproxy::shares_from_state("Unknown command").is_empty());
}

fn sticky(stable: u8, canary: u8, canary_percent: f64) -> Route {
    Route { sticky: Some(StickyBy::Header("X-Id".into())), ..route(stable, canary, canary_percent) }
}

#[test]
fn sticky_splits_give_each_slot_its_share_of_buckets_in_slot_order() {
    // (stable, canary, canary percent) → (stable's upper bound, canary's upper bound)
    let table: [(u8, u8, f64, u32, u32); 7] = [
        (3, 1, 10.0, 9_000, 10_000),
        (3, 1, 25.0, 7_500, 10_000),
        (3, 1, 50.0, 5_000, 10_000),
        (1, 3, 1.0, 9_900, 10_000),
        (3, 1, 0.0, 10_000, 10_000),
        (3, 1, 100.0, 0, 10_000),
        // No canary server yet: its share goes to the stable servers.
        (3, 0, 25.0, 10_000, 10_000),
    ];
    for (stable, canary, percent, want_stable, want_canary) in table {
        let bounds = sticky::bounds(&sticky(stable, canary, percent));
        let bound = |slot: Slot| bounds.iter().find(|(s, _)| *s == slot).map(|(_, b)| *b);
        let got = (bound(Slot::Stable).unwrap_or_default(), bound(Slot::Canary).unwrap_or_default());
        assert!(
            got == (want_stable, want_canary),
            "{stable}+{canary} at {percent} %: {got:?}, want ({want_stable}, {want_canary})"
        );
        assert_eq!(bound(Slot::B), Some(sticky::BUCKETS), "the last range ends at the top: {bounds:?}");
        assert!(bounds.windows(2).all(|w| w[0].1 <= w[1].1), "bounds rise in slot order: {bounds:?}");
    }
}

#[test]
fn raising_the_canary_only_moves_the_boundary_towards_stable() {
    let mut previous = sticky::BUCKETS;
    for percent in [1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0] {
        let stable_end = sticky::bounds(&sticky(3, 1, percent))[0].1;
        assert!(stable_end <= previous, "at {percent} % the stable range grew: {stable_end} > {previous}");
        previous = stable_end;
    }
}

#[test]
fn sticky_servers_live_in_their_slots_backend_and_bounds_move_at_runtime() {
    let old = [sticky(3, 1, 10.0)];
    let new = [sticky(2, 2, 25.0)];
    assert!(!needs_reload(&old, &new), "a new split is runtime commands");
    let texts: Vec<String> = runtime_commands(&old, &new).into_iter().map(|c| c.text).collect();
    for want in [
        "add server be_crm.canary/canary-102 10.0.0.102:8080 weight 85 check inter 1s fall 2 rise 1",
        "set server be_crm.stable/stable-1 weight 256",
        "experimental-mode on; set var proc.split.crm.stable int(7500)",
        "experimental-mode on; set var proc.split.crm.canary int(10000)",
        "del server be_crm.stable/stable-3",
    ] {
        assert!(texts.iter().any(|t| t == want), "missing {want:?} in {texts:#?}");
    }
    let weights = weight_commands(&new);
    assert!(
        weights.iter().any(|t| t == "experimental-mode on; set var proc.split.crm.canary int(10000)"),
        "{weights:?}"
    );
    assert_eq!(sticky::plugin_of_backend("be_crm.canary"), Some("crm"));
    assert_eq!(sticky::plugin_of_backend("be_my-crm"), Some("my-crm"));
    assert_eq!(sticky::plugin_of_backend("be_"), None);
    assert_eq!(sticky::plugin_of_backend("stats"), None);
}

#[test]
fn variable_names_keep_dashed_plugins_apart() {
    let mut dashed = sticky(1, 1, 10.0);
    dashed.plugin = "a-b".into();
    let text = config(&[dashed], &RouterPorts::default());
    assert!(text.contains("set-var proc.split.a.b.canary int("), "{text}");
    assert!(text.contains("use_backend be_a-b.canary if { var(txn.bucket),sub(proc.split.a.b.canary)"), "{text}");
}
