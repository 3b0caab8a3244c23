//! Where a kernel struct keeps a member, read from the kernel's own type
//! information (/sys/kernel/btf/vmlinux): the BTF scheduler hooks get a
//! `task_struct *` and need its `pid`, whose offset differs between kernels
//! and builds. aya 0.14 parses BTF but keeps member offsets private, and the
//! BTF crates of this field are LGPL (this project is MIT/Apache), so the
//! format is read here: a header, type records, a string table.
const MAGIC: u16 = 0xeb9f;

/// Where the kernel's BTF lives (absent: CONFIG_DEBUG_INFO_BTF off).
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("not BTF (magic {0:#06x}, expected 0xeb9f in this machine's byte order)")]
    Magic(u16),
    #[error("BTF truncated at byte {0}")]
    Truncated(usize),
    #[error("BTF type kind {0} is unknown to this reader")]
    UnknownKind(u32),
    #[error("struct {0} is not in the kernel's BTF")]
    NoStruct(String),
    #[error("struct {0} has no member {1} in the kernel's BTF")]
    NoMember(String, String),
    #[error("{0}.{1} is a bitfield, not a whole field")]
    Bitfield(String, String),
}

/// One BTF blob's types and strings, with where each type's record starts
/// (one flat index: the kernel's BTF holds some 100000 types, and a
/// daemon should not keep a structure per type).
pub struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Byte offset in `types` of type id `i + 1`'s record.
    starts: Vec<u32>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes(s.try_into().expect("4 bytes")))
        .ok_or(BtfError::Truncated(at))
}

/// Bytes that follow a type record of `kind` with `vlen` entries.
fn trailing(kind: u32, vlen: usize) -> Result<usize, BtfError> {
    Ok(match kind {
        // INT: one u32 of encoding. VAR: linkage. DECL_TAG: component index.
        1 | 14 | 17 => 4,
        // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG.
        2 | 7..=12 | 16 | 18 => 0,
        // ARRAY: element type, index type, count.
        3 => 12,
        // STRUCT, UNION, DATASEC, ENUM64: 12 bytes per entry.
        4 | 5 | 15 | 19 => 12 * vlen,
        // ENUM, FUNC_PROTO: 8 bytes per entry.
        6 | 13 => 8 * vlen,
        k => return Err(BtfError::UnknownKind(k)),
    })
}

/// A struct or union record: (name offset, members, kind flag).
struct Composite {
    name_off: u32,
    vlen: usize,
    kind_flag: bool,
    /// Byte offset of the first member in `types`.
    members_at: usize,
}

impl<'a> Btf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Btf<'a>, BtfError> {
        let magic = data
            .get(0..2)
            .map(|s| u16::from_ne_bytes([s[0], s[1]]))
            .ok_or(BtfError::Truncated(0))?;
        if magic != MAGIC {
            return Err(BtfError::Magic(magic));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
        let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
        let slice = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or(BtfError::Truncated(hdr_len + off + len))
        };
        let types = slice(type_off, type_len)?;
        let strings = slice(str_off, str_len)?;
        let mut starts = Vec::new();
        let mut at = 0usize;
        while at < types.len() {
            let info = u32_at(types, at + 4)?;
            u32_at(types, at + 8)?;
            starts.push(at as u32);
            at += 12 + trailing((info >> 24) & 0x1f, (info & 0xffff) as usize)?;
        }
        if at != types.len() {
            return Err(BtfError::Truncated(at));
        }
        Ok(Btf {
            types,
            strings,
            starts,
        })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    /// Type `id`, if it is a struct or union.
    fn composite(&self, id: u32) -> Option<Composite> {
        let at = *self.starts.get((id as usize).checked_sub(1)?)? as usize;
        let info = u32_at(self.types, at + 4).ok()?;
        matches!((info >> 24) & 0x1f, 4 | 5).then(|| Composite {
            name_off: u32_at(self.types, at).unwrap_or(0),
            vlen: (info & 0xffff) as usize,
            kind_flag: info >> 31 == 1,
            members_at: at + 12,
        })
    }

    /// Member `i` of `c`: (name offset, bit offset, bitfield, type id).
    fn member(&self, c: &Composite, i: usize) -> (u32, u32, bool, u32) {
        let rec = c.members_at + 12 * i;
        let word = |k: usize| u32_at(self.types, rec + 4 * k).unwrap_or(0);
        let offset = word(2);
        // With the kind flag, the top byte is a bitfield's size.
        let (bits, bitfield) = if c.kind_flag {
            (offset & 0x00ff_ffff, offset >> 24 != 0)
        } else {
            (offset, false)
        };
        (word(0), bits, bitfield, word(1))
    }

    /// The byte offset of `member` in struct `name`, looking into anonymous
    /// structs and unions it holds (as the kernel's C does).
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let id = (1..=self.starts.len() as u32)
            .find(|&id| {
                self.composite(id)
                    .is_some_and(|c| c.vlen > 0 && self.name(c.name_off) == name.as_bytes())
            })
            .ok_or_else(|| BtfError::NoStruct(name.into()))?;
        let bits = self
            .find(id, member.as_bytes(), 0)
            .ok_or_else(|| BtfError::NoMember(name.into(), member.into()))?;
        match bits {
            (b, false) if b % 8 == 0 => Ok(b / 8),
            _ => Err(BtfError::Bitfield(name.into(), member.into())),
        }
    }

    /// Bit offset of `member` within composite `id`; `depth` bounds the
    /// descent into anonymous members.
    fn find(&self, id: u32, member: &[u8], depth: u32) -> Option<(u32, bool)> {
        let c = self.composite(id)?;
        let members = (0..c.vlen).map(|i| self.member(&c, i));
        for (name_off, bits, bitfield, _) in members.clone() {
            if self.name(name_off) == member {
                return Some((bits, bitfield));
            }
        }
        if depth >= 8 {
            return None;
        }
        members.filter(|m| m.0 == 0).find_map(|(_, bits, _, ty)| {
            self.find(ty, member, depth + 1)
                .map(|(inner, bf)| (bits + inner, bf))
        })
    }
}

/// Where the running kernel keeps what the programs read from its
/// structures: each offset, or why it is not known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offsets {
    /// `task_struct.pid` (the BTF scheduler hooks).
    pub task_pid: Result<u32, String>,
    /// `task_struct.sched_info.run_delay`: the task's run-queue wait in all
    /// (CONFIG_SCHED_INFO), which splits its time off CPU into runnable and
    /// blocked (every scheduler hook set needs it).
    pub task_run_delay: Result<u32, String>,
    /// `tcp_sock.tcp_wstamp_ns`: when TCP last sent a packet of the socket
    /// (its departure time; receiving does not move it, unlike
    /// `tcp_clock_cache`), the start of kernel_out.
    pub tcp_wstamp_ns: Result<u32, String>,
    /// `sock.sk_protocol` (not a bitfield since Linux 5.6): the raw send
    /// and receive tracepoints tell TCP sockets by it.
    pub sk_protocol: Result<u32, String>,
    /// `sock_common.skc_net`: a socket's network namespace, which tells
    /// the two ends of a pod's loopback connection from another pod's.
    pub skc_net: Result<u32, String>,
    /// `sock.sk_receive_queue.qlen`: how many buffers a socket's receive
    /// queue holds (0 after a read took everything).
    pub sk_receive_queue_len: Result<u32, String>,
}

/// The offsets, from one read and one parse of the kernel's BTF.
pub fn kernel_offsets() -> Offsets {
    let data = std::fs::read(VMLINUX).map_err(|e| format!("reading {VMLINUX}: {e}"));
    let btf = data
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|d| Btf::parse(d).map_err(|e| format!("{VMLINUX}: {e}")));
    let found = |ty: &str, member: &str| {
        btf.as_ref()
            .map_err(Clone::clone)?
            .member_offset(ty, member)
            .map_err(|e| format!("{VMLINUX}: {e}"))
    };
    Offsets {
        task_pid: found("task_struct", "pid"),
        task_run_delay: found("task_struct", "sched_info")
            .and_then(|i| Ok(i + found("sched_info", "run_delay")?)),
        tcp_wstamp_ns: found("tcp_sock", "tcp_wstamp_ns"),
        skc_net: found("sock_common", "skc_net"),
        sk_protocol: found("sock", "sk_protocol"),
        sk_receive_queue_len: found("sock", "sk_receive_queue")
            .and_then(|q| Ok(q + found("sk_buff_head", "qlen")?)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A type record: name, kind, vlen, kind_flag, size, trailing u32s.
    type Record<'a> = (&'a str, u32, u32, bool, u32, Vec<u32>);

    /// A BTF blob of `types`, with `extra_names` in its string table too.
    fn blob(types: &[Record], extra_names: &[&str]) -> (Vec<u8>, HashMap<String, u32>) {
        let mut strings = vec![0u8];
        let mut offs = HashMap::new();
        // Extra names first: their offsets do not depend on `types`.
        for n in extra_names.iter().copied().chain(types.iter().map(|t| t.0)) {
            if !n.is_empty() && !offs.contains_key(n) {
                offs.insert(n.to_string(), strings.len() as u32);
                strings.extend_from_slice(n.as_bytes());
                strings.push(0);
            }
        }
        let name = |n: &str| if n.is_empty() { 0 } else { offs[n] };
        let mut t = Vec::new();
        for (n, kind, vlen, flag, size, rest) in types {
            let info = (u32::from(*flag) << 31) | (kind << 24) | vlen;
            for w in [name(n), info, *size].iter().chain(rest) {
                t.extend_from_slice(&w.to_ne_bytes());
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_ne_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(&strings);
        (out, offs)
    }

    #[test]
    fn a_member_is_found_directly_and_inside_an_anonymous_union() {
        // 1: int; 2: a forward declaration named task_struct (no members);
        // 3: union { int tgid_alias; }; 4: struct task_struct { int state
        // @0; int pid @1024 bits; union (anonymous) @2048 bits; int flags:3
        // (bitfield) @4096 bits }.
        let names = ["state", "pid", "tgid_alias", "flags"];
        let (_, offs) = blob(&[], &names);
        let m = |n: &str, ty: u32, off: u32| vec![offs[n], ty, off];
        let types = vec![
            ("int", 1, 0, false, 4, vec![32]),
            ("task_struct", 7, 0, false, 0, vec![]),
            ("", 5, 1, false, 4, m("tgid_alias", 1, 0)),
            (
                "task_struct",
                4,
                4,
                true,
                1024,
                [
                    m("state", 1, 0),
                    m("pid", 1, 1024),
                    vec![0, 3, 2048],
                    m("flags", 1, (3 << 24) | 4096),
                ]
                .concat(),
            ),
        ];
        let (data, _) = blob(&types, &names);
        let btf = Btf::parse(&data).expect("a well-formed blob");
        assert_eq!(btf.member_offset("task_struct", "pid"), Ok(128));
        assert_eq!(btf.member_offset("task_struct", "state"), Ok(0));
        assert_eq!(btf.member_offset("task_struct", "tgid_alias"), Ok(256));
        assert_eq!(
            btf.member_offset("task_struct", "flags"),
            Err(BtfError::Bitfield("task_struct".into(), "flags".into()))
        );
        assert_eq!(
            btf.member_offset("task_struct", "comm"),
            Err(BtfError::NoMember("task_struct".into(), "comm".into()))
        );
        assert_eq!(
            btf.member_offset("sock", "sk_state"),
            Err(BtfError::NoStruct("sock".into()))
        );
    }

    #[test]
    fn bad_blobs_are_refused_not_misread() {
        // The magic in the other byte order: BTF of another machine.
        let mut other = vec![0xeb, 0x9f];
        other.resize(24, 0);
        assert_eq!(
            Btf::parse(&other).err(),
            Some(BtfError::Magic(u16::from_ne_bytes([0xeb, 0x9f])))
        );
        let (mut data, _) = blob(&[("int", 1, 0, false, 4, vec![32])], &[]);
        data.truncate(data.len() - 6);
        assert!(matches!(Btf::parse(&data), Err(BtfError::Truncated(_))));
        let (data, _) = blob(&[("x", 31, 0, false, 0, vec![])], &[]);
        assert_eq!(Btf::parse(&data).err(), Some(BtfError::UnknownKind(31)));
    }

    /// The running kernel's own BTF, where this machine has it (every kernel
    /// the project supports does; CI's runs on such a machine).
    #[test]
    fn this_kernels_offsets_are_found() {
        assert!(
            std::path::Path::new(VMLINUX).exists(),
            "{VMLINUX} is missing: this kernel was built without CONFIG_DEBUG_INFO_BTF"
        );
        let found = kernel_offsets();
        // An offset found, within `range` and a multiple of `align`.
        let at = |o: &Result<u32, String>, what: &str, range: std::ops::Range<u32>, align: u32| {
            let off = o
                .clone()
                .unwrap_or_else(|e| panic!("{what} in this kernel's BTF: {e}"));
            assert!(
                range.contains(&off) && off.is_multiple_of(align),
                "{what}: {off}"
            );
        };
        // pid sits after the scheduler's state, well inside the struct.
        at(&found.task_pid, "task_struct.pid", 256..8192, 1);
        // tcp_sock begins with inet_connection_sock, which begins with sock.
        at(
            &found.tcp_wstamp_ns,
            "tcp_sock.tcp_wstamp_ns",
            1024..8192,
            8,
        );
        // skc_net follows the addresses, ports, family, state and the
        // bind node and proto pointers at the head of sock_common.
        at(&found.skc_net, "sock_common.skc_net", 40..128, 8);
        // sk_protocol follows sock_common and the receive queue's fields.
        at(&found.sk_protocol, "sock.sk_protocol", 136..1024, 2);
        // The receive queue follows sock_common; qlen follows its two
        // list pointers.
        at(
            &found.sk_receive_queue_len,
            "sock.sk_receive_queue.qlen",
            136..1024,
            4,
        );
    }
}
