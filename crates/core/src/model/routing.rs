//! How a plugin's traffic reaches its instances: Docker DNS (`router: dns`, a weight is a share
//! of instances) or a router plugsync manages (`router: haproxy`, exact weights, stickiness).
//! The fleet config sets the default under `traffic:`; a manifest's own `traffic:` wins.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouterKind {
    #[default]
    Dns,
    Haproxy,
}

/// What keeps one client on one version: a header or a cookie, hashed consistently.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StickyBy {
    Header(String),
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("found {found:?}, expected header:NAME or cookie:NAME (NAME: letters, digits, '-' and '_')")]
pub struct StickyError {
    pub found: String,
}

impl StickyBy {
    /// `header:X-Correlation-Id` or `cookie:session`.
    pub fn parse(text: &str) -> Result<StickyBy, StickyError> {
        let bad = || StickyError { found: text.to_string() };
        let (kind, name) = text.trim().split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match kind.trim() {
            "header" if valid => Ok(StickyBy::Header(name.to_string())),
            "cookie" if valid => Ok(StickyBy::Cookie(name.to_string())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for StickyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StickyBy::Header(name) => write!(f, "header:{name}"),
            StickyBy::Cookie(name) => write!(f, "cookie:{name}"),
        }
    }
}

impl Serialize for StickyBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StickyBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        StickyBy::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The router's own ports on each replica: its runtime API and its `/metrics` + `/healthz`.
/// A plugin behind the router cannot listen on them.
pub const ROUTER_API_PORT: u16 = 9999;
pub const ROUTER_STATS_PORT: u16 = 8404;

/// The fleet's `traffic:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FleetTraffic {
    #[serde(default)]
    pub router: RouterKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_by: Option<StickyBy>,
    /// The router's image (HAProxy 2.4 or later); its configuration goes to
    /// `/usr/local/etc/haproxy/haproxy.cfg`, as the public `haproxy` images read it.
    #[serde(default = "default_router_image")]
    pub image: String,
    /// Router replicas, each holding every routed plugin's alias, so one can die.
    #[serde(default = "default_router_replicas")]
    pub replicas: u32,
    /// An edge gateway publishing one port: `api.basePath` → its plugin, through the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
}

/// The fleet's edge gateway (`traffic.gateway`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    /// Host port it publishes.
    pub port: u16,
    /// Host address the port is published on.
    #[serde(default = "default_gateway_address")]
    pub address: std::net::IpAddr,
}

fn default_gateway_address() -> std::net::IpAddr {
    std::net::IpAddr::from([0, 0, 0, 0])
}

impl Default for FleetTraffic {
    fn default() -> Self {
        FleetTraffic {
            router: RouterKind::Dns,
            sticky_by: None,
            image: default_router_image(),
            replicas: 2,
            gateway: None,
        }
    }
}

fn default_router_image() -> String {
    "haproxy:2.8".into()
}
fn default_router_replicas() -> u32 {
    2
}

/// A manifest's own `traffic:`, overriding the fleet's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginTraffic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_by: Option<StickyBy>,
}

/// A plugin's routing as resolved from the fleet's default and its own setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "router", rename_all = "camelCase")]
pub enum Routing {
    #[default]
    Dns,
    Haproxy {
        #[serde(skip_serializing_if = "Option::is_none")]
        sticky_by: Option<StickyBy>,
    },
}

impl Routing {
    pub fn resolve(fleet: &FleetTraffic, own: Option<&PluginTraffic>) -> Routing {
        let router = own.and_then(|t| t.router).unwrap_or(fleet.router);
        let sticky_by = own.and_then(|t| t.sticky_by.clone()).or_else(|| fleet.sticky_by.clone());
        match router {
            RouterKind::Dns => Routing::Dns,
            RouterKind::Haproxy => Routing::Haproxy { sticky_by },
        }
    }

    pub fn is_dns(&self) -> bool {
        *self == Routing::Dns
    }

    pub fn is_routed(&self) -> bool {
        matches!(self, Routing::Haproxy { .. })
    }

    pub fn sticky(&self) -> Option<&StickyBy> {
        match self {
            Routing::Dns => None,
            Routing::Haproxy { sticky_by } => sticky_by.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_setting_wins_over_the_fleet_default() {
        let fleet = FleetTraffic {
            router: RouterKind::Haproxy,
            sticky_by: Some(StickyBy::Header("X-Correlation-Id".into())),
            ..Default::default()
        };
        let cases = [
            (None, Routing::Haproxy { sticky_by: Some(StickyBy::Header("X-Correlation-Id".into())) }),
            (Some(PluginTraffic { router: Some(RouterKind::Dns), sticky_by: None }), Routing::Dns),
            (
                Some(PluginTraffic { router: None, sticky_by: Some(StickyBy::Cookie("sid".into())) }),
                Routing::Haproxy { sticky_by: Some(StickyBy::Cookie("sid".into())) },
            ),
        ];
        for (own, want) in cases {
            assert_eq!(Routing::resolve(&fleet, own.as_ref()), want, "{own:?}");
        }
        assert_eq!(Routing::resolve(&FleetTraffic::default(), None), Routing::Dns);
    }

    #[test]
    fn sticky_settings_parse_or_say_what_was_expected() {
        assert_eq!(StickyBy::parse("header:X-Tenant-ID"), Ok(StickyBy::Header("X-Tenant-ID".into())));
        assert_eq!(StickyBy::parse("cookie:sid"), Ok(StickyBy::Cookie("sid".into())));
        for bad in ["", "header:", "query:x", "header:a b", "cookie"] {
            let e = StickyBy::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("expected header:NAME or cookie:NAME"), "{e}");
        }
    }
}
