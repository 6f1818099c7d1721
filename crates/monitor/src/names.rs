//! How `cilium monitor` names things in its text lines: observation points as arrows
//! (`-> endpoint`, `<- stack`), reserved security identities by name (`host`, `world`) and
//! policy match types (`L3-L4`).

use std::borrow::Cow;

use cilium_datapath::codes::ObservationPoint;

/// The arrow form of an observation point: `to-stack` reads `-> stack`, `from-endpoint`
/// reads `<- endpoint`.
pub fn arrow(point: ObservationPoint) -> String {
    let name = point.name();
    match (name.strip_prefix("to-"), name.strip_prefix("from-")) {
        (Some(target), _) => format!("-> {target}"),
        (_, Some(origin)) => format!("<- {origin}"),
        _ => format!("-> {name} point {}", point.0),
    }
}

/// A security identity as `cilium monitor` shows it: reserved identities by name
/// (`host`, `world`, `unknown` ...), all others by number.
pub fn identity_name(identity: u32) -> Cow<'static, str> {
    const RESERVED: [&str; 11] = [
        "unknown",
        "host",
        "world",
        "unmanaged",
        "health",
        "init",
        "remote-node",
        "kube-apiserver",
        "ingress",
        "world-ipv4",
        "world-ipv6",
    ];
    match RESERVED.get(identity as usize) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(identity.to_string()),
    }
}

/// A policy verdict's `POLICY_MATCH_*` as `cilium monitor` prints it; `none` for 0 and for
/// values it does not know.
pub fn policy_match_name(match_type: u8) -> &'static str {
    match match_type {
        1 => "L3-Only",
        2 => "L3-L4",
        3 => "L4-Only",
        4 => "all",
        5 => "L3-Proto",
        6 => "Proto-Only",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_points_read_as_arrows() {
        assert_eq!(arrow(ObservationPoint::TO_ENDPOINT), "-> endpoint");
        assert_eq!(arrow(ObservationPoint::TO_STACK), "-> stack");
        assert_eq!(arrow(ObservationPoint::FROM_ENDPOINT), "<- endpoint");
        assert_eq!(arrow(ObservationPoint::TO_NETWORK), "-> network");
        assert_eq!(arrow(ObservationPoint(200)), "-> unknown point 200");
    }

    #[test]
    fn reserved_identities_by_name() {
        assert_eq!(identity_name(0), "unknown");
        assert_eq!(identity_name(1), "host");
        assert_eq!(identity_name(8), "ingress");
        assert_eq!(identity_name(61131), "61131");
    }

    #[test]
    fn policy_match_types_as_cilium_prints_them() {
        let names: Vec<&str> = (0..=7).map(policy_match_name).collect();
        assert_eq!(
            names,
            [
                "none",
                "L3-Only",
                "L3-L4",
                "L4-Only",
                "all",
                "L3-Proto",
                "Proto-Only",
                "none"
            ]
        );
    }
}
