//! What the kernel's verifier said about a program it refused, cut to what
//! an operator can act on: the rejection itself and the source line it was
//! checking. The full log runs to hundreds of lines.

/// Lines the verifier appends after its verdict (statistics, not reasons).
fn is_trailer(line: &str) -> bool {
    [
        "verification time",
        "stack depth",
        "processed ",
        "-- END PROG LOAD LOG",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// The verifier's rejection from its log: the last line before the
/// statistics, with the last source line it was checking (`; ...` lines,
/// present when the object carries BTF line info). None for an empty log.
pub fn reason(log: &str) -> Option<String> {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_trailer(l))
        .collect();
    let (last, before) = lines.split_last()?;
    let source = before
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("; "))
        .map(str::trim);
    Some(match source {
        Some(src) if !last.starts_with(';') => format!("{last} (at `{src}`)"),
        _ => (*last).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The end of the log Linux 6.1 wrote when fexit tcp_recvmsg hashed the
    // typed socket pointer it read from its context.
    const REFUSED: &str = "reg type unsupported for arg#0 function fx_tcp_recvmsg#14
0: R1=ctx(off=0,imm=0) R10=fp0
; let sk = ctx.arg(0);
47: (79) r7 = *(u64 *)(r7 +0)
func 'tcp_recvmsg' arg0 has btf_id 771 type STRUCT 'sock'
; (((sk >> 6) ^ (sk >> 22)) & (SOCK_SLOTS_LEN as u64 - 1)) as u32
50: (bf) r1 = r7                      ; R1_w=ptr_sock(off=0,imm=0) R7=ptr_sock(off=0,imm=0)
51: (77) r1 >>= 22
R1 pointer arithmetic with >>= operator prohibited
verification time 4476 usec
stack depth 72+0
processed 49 insns (limit 1000000) max_states_per_insn 0 total_states 4 peak_states 4 mark_read 2
";

    #[test]
    fn the_rejection_and_its_source_line() {
        assert_eq!(
            reason(REFUSED).as_deref(),
            Some(
                "R1 pointer arithmetic with >>= operator prohibited \
                 (at `(((sk >> 6) ^ (sk >> 22)) & (SOCK_SLOTS_LEN as u64 - 1)) as u32`)"
            )
        );
    }

    #[test]
    fn a_log_without_source_lines_or_without_anything() {
        assert_eq!(
            reason("0: (85) call bpf_probe_write_user#36\nunknown func bpf_probe_write_user#36\n")
                .as_deref(),
            Some("unknown func bpf_probe_write_user#36")
        );
        assert_eq!(reason(""), None);
        assert_eq!(reason("processed 0 insns (limit 1000000)\n"), None);
    }
}
