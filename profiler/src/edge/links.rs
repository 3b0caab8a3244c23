//! Which interfaces of the node's network namespace are a pod's edge: the
//! node-side ends of the veths whose other end is in the pod's namespace.
//! The node's namespace numbers each namespace a veth leads to (its nsid);
//! the pod's is found from any of its processes.
use std::io;

use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage},
    nsid::{NsidAttribute, NsidMessage},
};

use super::netlink::{Flags, request};

/// An interface of the node's namespace, as far as the pod edge cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLink {
    pub index: u32,
    pub name: String,
    /// The namespace its peer lives in, numbered by the node's namespace
    /// (veths and other cross-namespace pairs only).
    pub peer_nsid: Option<i32>,
    pub veth: bool,
}

/// The pod edges among `links`: the veths whose peer lives in namespace
/// `nsid`, by name.
pub fn pod_edges(links: &[NodeLink], nsid: i32) -> Vec<NodeLink> {
    links
        .iter()
        .filter(|l| l.veth && l.peer_nsid == Some(nsid))
        .cloned()
        .collect()
}

/// The node namespace's number for the network namespace `pid` lives in;
/// None when it has none (no veth or other link joins the two).
pub fn nsid_of_pid(pid: u32) -> io::Result<Option<i32>> {
    let mut msg = NsidMessage::default();
    msg.attributes.push(NsidAttribute::Pid(pid));
    let reply = request(RouteNetlinkMessage::GetNsId(msg), Flags::Get)?;
    Ok(reply.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewNsId(m) => m.attributes.iter().find_map(|a| match a {
            NsidAttribute::Id(id) if *id >= 0 => Some(*id),
            _ => None,
        }),
        _ => None,
    }))
}

/// The index of interface `ifname` of the calling thread's namespace.
pub fn index_of(ifname: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(ifname)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a NUL-terminated name.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// Every interface of the calling thread's namespace.
pub fn node_links() -> io::Result<Vec<NodeLink>> {
    let reply = request(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        Flags::Dump,
    )?;
    Ok(reply
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(m) => Some(node_link(&m)),
            _ => None,
        })
        .collect())
}

fn node_link(m: &LinkMessage) -> NodeLink {
    let mut link = NodeLink {
        index: m.header.index,
        name: String::new(),
        peer_nsid: None,
        veth: false,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::LinkNetNsId(id) if *id >= 0 => link.peer_nsid = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                link.veth = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)));
            }
            _ => {}
        }
    }
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, peer_nsid: Option<i32>, veth: bool) -> NodeLink {
        NodeLink {
            index,
            name: name.into(),
            peer_nsid,
            veth,
        }
    }

    #[test]
    fn a_pod_edge_is_a_veth_into_its_namespace() {
        let links = [
            link(1, "lo", None, false),
            link(2, "eth0", None, false),
            link(5, "veth0", Some(0), true),
            link(6, "veth1", Some(1), true),
            // A tunnel into the pod's namespace is not its edge.
            link(7, "vxlan0", Some(1), false),
        ];
        assert_eq!(pod_edges(&links, 1), vec![links[3].clone()]);
        assert_eq!(pod_edges(&links, 0), vec![links[2].clone()]);
        assert!(pod_edges(&links, 9).is_empty());
    }

    #[test]
    fn a_link_message_gives_name_peer_namespace_and_kind() {
        let mut m = LinkMessage::default();
        m.header.index = 12;
        m.attributes = vec![
            LinkAttribute::IfName("veth3".into()),
            LinkAttribute::LinkNetNsId(4),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ];
        assert_eq!(node_link(&m), link(12, "veth3", Some(4), true));
        // -1 is the kernel's "no namespace number".
        m.attributes[1] = LinkAttribute::LinkNetNsId(-1);
        assert_eq!(node_link(&m).peer_nsid, None);
    }
}
