//! Traffic interception as istio-iptables sets it up in a pod: inbound TCP
//! to 15006, the app's outbound TCP to 15001, the proxy's own traffic (UID
//! 1337) exempt, with the loopback exceptions that make this work.
use super::{TestbedError, netns};

pub const PROXY_UID: u32 = 1337;
pub const INBOUND_PORT: u16 = 15006;
pub const OUTBOUND_PORT: u16 = 15001;
/// Ports inbound interception leaves alone (Istio's defaults).
pub const INBOUND_EXCLUDED: [u16; 4] = [15008, 15090, 15021, 15020];

/// The nat table for `iptables-restore`.
pub fn rules() -> String {
    let mut r = String::from("*nat\n");
    for chain in [
        "ISTIO_INBOUND",
        "ISTIO_IN_REDIRECT",
        "ISTIO_OUTPUT",
        "ISTIO_REDIRECT",
    ] {
        r.push_str(&format!(":{chain} - [0:0]\n"));
    }
    r.push_str("-A PREROUTING -p tcp -j ISTIO_INBOUND\n");
    for port in INBOUND_EXCLUDED {
        r.push_str(&format!(
            "-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN\n"
        ));
    }
    r.push_str("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT\n");
    r.push_str(&format!(
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {INBOUND_PORT}\n"
    ));
    r.push_str("-A OUTPUT -p tcp -j ISTIO_OUTPUT\n");
    // The proxy's connections to the app over loopback from 127.0.0.6.
    r.push_str("-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN\n");
    // The proxy calling its own pod's address: treat as inbound.
    r.push_str(&format!(
        "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner {PROXY_UID} -j ISTIO_IN_REDIRECT\n"
    ));
    r.push_str(&format!(
        "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner {PROXY_UID} -j RETURN\n"
    ));
    r.push_str(&format!(
        "-A ISTIO_OUTPUT -m owner --uid-owner {PROXY_UID} -j RETURN\n"
    ));
    r.push_str("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN\n");
    r.push_str("-A ISTIO_OUTPUT -j ISTIO_REDIRECT\n");
    r.push_str(&format!(
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {OUTBOUND_PORT}\n"
    ));
    r.push_str("COMMIT\n");
    r
}

/// Install the rules in a pod's namespace; they vanish with it.
pub fn apply(pod_ns: &str) -> Result<(), TestbedError> {
    netns::run_with_input(
        &mut netns::exec_in(pod_ns, "iptables-restore"),
        rules().as_bytes(),
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_redirect_inbound_and_outbound_and_exempt_the_proxy() {
        let r = rules();
        assert!(r.starts_with("*nat\n") && r.ends_with("COMMIT\n"));
        assert!(r.contains("-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"));
        assert!(r.contains("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"));
        assert!(r.contains("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN"));
        assert!(r.contains("-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN"));
        // The exemption comes before the catch-all redirect.
        let exempt = r.find("--uid-owner 1337 -j RETURN").expect("exempt");
        let catch_all = r
            .find("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
            .expect("redirect");
        assert!(exempt < catch_all);
    }
}
