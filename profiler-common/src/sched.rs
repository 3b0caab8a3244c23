//! Where a proxy thread's time is split between running, runnable (waiting
//! for a CPU: preempted, throttled, or woken and not yet run) and blocked
//! (asleep). The kernel follows each proxy thread it has seen read or write
//! through the scheduler's switches and wake-ups ([`ThreadSched`]) and
//! stamps every read and write with the thread's account at that instant
//! ([`Mark`]); the difference between a forward's read and write is the
//! split of its process time ([`Split`]). Plain functions, shared by the
//! eBPF programs and the host's unit tests.

/// tid -> [`ThreadSched`] of the proxy threads followed.
pub const THREAD_SCHED: &str = "THREAD_SCHED";
pub const THREAD_SCHED_MAX: u32 = 16384;

/// A bitmap in front of THREAD_SCHED, one entry holding [`ThreadBits`]: a
/// thread id's bit is set when a followed thread maps to it, so the switch
/// of a thread that is not followed costs one load (from 8 KB; an array of
/// ids, as for processes, would take 512 KB of kernel memory). Set by the kernel when it
/// starts following a thread (and again at its next read or write, should
/// two CPUs' updates of one word race); rewritten by userspace from the
/// threads still followed when ended ones leave.
pub const THREAD_FILTER: &str = "THREAD_FILTER";
pub const THREAD_BITS_WORDS: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadBits {
    pub words: [u64; THREAD_BITS_WORDS],
}

impl Default for ThreadBits {
    fn default() -> ThreadBits {
        ThreadBits {
            words: [0; THREAD_BITS_WORDS],
        }
    }
}

/// The word and bit of a thread id.
pub const fn thread_bit(tid: u32) -> (usize, u64) {
    ((tid as usize >> 6) % THREAD_BITS_WORDS, 1 << (tid & 63))
}

impl ThreadBits {
    pub const fn has(&self, tid: u32) -> bool {
        let (w, b) = thread_bit(tid);
        self.words[w] & b != 0
    }

    pub const fn set(&mut self, tid: u32) {
        let (w, b) = thread_bit(tid);
        self.words[w] |= b;
    }
}

pub const RUNNING: u32 = 1;
pub const RUNNABLE: u32 = 2;
pub const BLOCKED: u32 = 3;

/// Runnable intervals remembered per thread, for the runnable part of a
/// read's queue time (arrival to read).
pub const RUNNABLE_HISTORY: usize = 4;

/// sched_switch's `prev_state`: the task state bits (0: TASK_RUNNING) and,
/// above them, TASK_REPORT_MAX (0x100) when the task was preempted. A task
/// switched out running or preempted stays runnable; any other state sleeps.
pub const fn switched_out_runnable(prev_state: i64) -> bool {
    prev_state & 0xff == 0 || prev_state & 0x100 != 0
}

/// The raw sched_switch's arguments: `preempt`, and `prev_state` as the
/// task's own state word (TASK_RUNNING is 0). Preempted, or switched out
/// still running (a sleep undone by a pending signal), it stays runnable.
pub const fn switched_out_runnable_raw(preempt: bool, prev_state: u64) -> bool {
    preempt || prev_state == 0
}

/// The global of the kernel object that holds where `task_struct` keeps
/// `pid` (from the kernel's BTF), for the raw scheduler hooks.
pub const TASK_PID_OFFSET: &str = "TASK_PID_OFFSET";

/// One followed thread's scheduler account since the kernel began to
/// follow it (its first read or write seen). Only the switches, on the CPU
/// the thread leaves or takes, change its state; a wake-up, which another
/// CPU reports (possibly after the thread already got a CPU), only stores
/// its time, which the next switch in reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadSched {
    pub tgid: u32,
    /// [`RUNNING`], [`RUNNABLE`] (preempted) or [`BLOCKED`] (asleep, and
    /// maybe woken since: `woken_ns`), since `since_ns`.
    pub state: u32,
    /// Tells one following of a thread from another (never 0).
    pub generation: u32,
    /// Next slot of the runnable history to write.
    pub next: u32,
    pub since_ns: u64,
    /// The last wake-up seen; it counts when it is not before `since_ns`
    /// of a sleep.
    pub woken_ns: u64,
    /// Time spent runnable and blocked in finished states.
    pub runnable_ns: u64,
    pub blocked_ns: u64,
    /// The last runnable intervals, [start, end).
    pub runnable_start: [u64; RUNNABLE_HISTORY],
    pub runnable_end: [u64; RUNNABLE_HISTORY],
}

/// A thread's account at one instant: its cumulative runnable and blocked
/// time (the rest of the time it was followed, it ran).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub generation: u32,
    pub runnable_ns: u64,
    pub blocked_ns: u64,
}

impl ThreadSched {
    /// A thread first seen running (it is reading or writing) at `now`.
    pub const fn new(tgid: u32, now: u64) -> ThreadSched {
        ThreadSched {
            tgid,
            state: RUNNING,
            generation: (now as u32) | 1,
            next: 0,
            since_ns: now,
            woken_ns: 0,
            runnable_ns: 0,
            blocked_ns: 0,
            runnable_start: [0; RUNNABLE_HISTORY],
            runnable_end: [0; RUNNABLE_HISTORY],
        }
    }

    /// Where the state that began at `since_ns` stands at `now`: (blocked,
    /// and the start of the runnable time that followed, if any).
    const fn open(&self, now: u64) -> (u64, Option<u64>) {
        let since = self.since_ns;
        match self.state {
            RUNNABLE => (0, Some(since)),
            BLOCKED if self.woken_ns >= since && self.woken_ns <= now => {
                (self.woken_ns - since, Some(self.woken_ns))
            }
            BLOCKED => (now.saturating_sub(since), None),
            _ => (0, None),
        }
    }

    /// A switch was missed (the account contradicts what the scheduler
    /// just did): start a new following at `now`, so that no forward is
    /// split across the gap.
    fn resync(&mut self, now: u64) {
        let fresh = (now as u32) | 1;
        self.generation = if fresh == self.generation {
            fresh.wrapping_add(2)
        } else {
            fresh
        };
        self.since_ns = now;
    }

    /// The thread left its CPU at `now`, still runnable or going to sleep;
    /// false when it was not running by this account (a missed switch in:
    /// the following starts over).
    pub fn switch_out(&mut self, now: u64, runnable: bool) -> bool {
        let consistent = self.state == RUNNING;
        if !consistent {
            self.resync(now);
        }
        self.since_ns = now;
        self.state = if runnable { RUNNABLE } else { BLOCKED };
        consistent
    }

    /// The thread got a CPU at `now`; returns how long it waited runnable
    /// (None when it slept and its wake-up was not seen: all of it counts
    /// as blocked), and false when it was running by this account (a
    /// missed switch out: the following starts over).
    pub fn switch_in(&mut self, now: u64) -> (Option<u64>, bool) {
        if self.state == RUNNING {
            self.resync(now);
            return (None, false);
        }
        let (blocked, runnable_from) = self.open(now);
        self.blocked_ns += blocked;
        let waited = runnable_from.map(|from| {
            let w = now.saturating_sub(from);
            self.runnable_ns += w;
            let i = (self.next as usize) % RUNNABLE_HISTORY;
            self.runnable_start[i] = from;
            self.runnable_end[i] = now;
            self.next = self.next.wrapping_add(1);
            w
        });
        self.state = RUNNING;
        self.since_ns = now;
        (waited, true)
    }

    /// The thread was woken at `now` (runnable from then on). Reported by
    /// the waking CPU: it only stores the time, which counts if the thread
    /// is still asleep by the account when it next gets a CPU.
    pub fn wake(&mut self, now: u64) {
        if self.state == BLOCKED {
            self.woken_ns = now;
        }
    }

    /// The account at `now`, the current state included up to `now`.
    pub const fn mark(&self, now: u64) -> Mark {
        let (blocked, runnable_from) = self.open(now);
        let runnable = match runnable_from {
            Some(from) => now.saturating_sub(from),
            None => 0,
        };
        Mark {
            generation: self.generation,
            runnable_ns: self.runnable_ns + runnable,
            blocked_ns: self.blocked_ns + blocked,
        }
    }

    /// Time within [from, to) the thread spent runnable, as far as its
    /// history reaches (the last [`RUNNABLE_HISTORY`] intervals, and the
    /// current one).
    pub fn runnable_within(&self, from: u64, to: u64) -> u64 {
        let overlap = |s: u64, e: u64| {
            let (s, e) = (if s > from { s } else { from }, if e < to { e } else { to });
            e.saturating_sub(s)
        };
        let mut sum = 0;
        let mut i = 0;
        while i < RUNNABLE_HISTORY {
            sum += overlap(self.runnable_start[i], self.runnable_end[i]);
            i += 1;
        }
        if let (_, Some(start)) = self.open(to) {
            sum += overlap(start, to);
        }
        sum
    }
}

/// A forward's process time (read to write, one thread) split in three;
/// the parts sum to it exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub on_cpu_ns: u64,
    pub runnable_ns: u64,
    pub blocked_ns: u64,
}

impl Split {
    /// The split of `process_ns` between a read marked `read` and a write
    /// marked `write` by the same thread; None when the thread was not
    /// followed across both (no mark, or a new following between).
    pub fn between(read: Option<Mark>, write: Option<Mark>, process_ns: u64) -> Option<Split> {
        let (r, w) = (read?, write?);
        if r.generation != w.generation || r.generation == 0 {
            return None;
        }
        // A switch seen late on another CPU can skew the account by its
        // delay; the parts are held within the process time.
        let runnable_ns = w.runnable_ns.saturating_sub(r.runnable_ns).min(process_ns);
        let blocked_ns = w
            .blocked_ns
            .saturating_sub(r.blocked_ns)
            .min(process_ns - runnable_ns);
        Some(Split {
            on_cpu_ns: process_ns - runnable_ns - blocked_ns,
            runnable_ns,
            blocked_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_partition_the_time_followed() {
        let mut t = ThreadSched::new(7, 1_000);
        // Runs 1000..1500, sleeps to 4000, woken, runs from 4200, preempted
        // at 5000, back at 5300.
        t.switch_out(1_500, false);
        t.wake(4_000);
        assert_eq!(t.switch_in(4_200), (Some(200), true));
        t.switch_out(5_000, true);
        assert_eq!(t.switch_in(5_300), (Some(300), true));
        let m = t.mark(6_000);
        assert_eq!((m.runnable_ns, m.blocked_ns), (500, 2_500));
        let ran = 6_000 - 1_000 - m.runnable_ns - m.blocked_ns;
        assert_eq!(ran, 500 + 800 + 700);
        // The open state counts up to the mark.
        t.switch_out(6_500, false);
        assert_eq!(t.mark(7_000).blocked_ns, 3_000);
    }

    #[test]
    fn a_switch_in_before_its_wakeup_is_seen_counts_as_blocked() {
        let mut t = ThreadSched::new(7, 0);
        t.switch_out(100, false);
        assert_eq!(t.switch_in(400), (None, true));
        t.wake(410); // late, from another CPU: ignored
        let m = t.mark(500);
        assert_eq!((m.runnable_ns, m.blocked_ns), (0, 300));
        // A wake-up read as asleep but stored after the thread got its CPU
        // changes nothing: it is before the next sleep began.
        t.woken_ns = 420;
        t.switch_out(600, false);
        assert_eq!(t.switch_in(900), (None, true));
        assert_eq!(t.mark(900).blocked_ns, 600);
        assert!(t.switch_out(950, true), "the account stayed consistent");
    }

    #[test]
    fn a_wakeup_splits_a_sleep_into_blocked_then_runnable() {
        let mut t = ThreadSched::new(7, 0);
        t.switch_out(100, false);
        t.wake(700);
        // Asked while still waiting for a CPU: 600 blocked, 50 runnable.
        let m = t.mark(750);
        assert_eq!((m.blocked_ns, m.runnable_ns), (600, 50));
        assert_eq!(t.runnable_within(0, 800), 100);
        assert_eq!(t.switch_in(800), (Some(100), true));
        let m = t.mark(800);
        assert_eq!((m.blocked_ns, m.runnable_ns), (600, 100));
    }

    #[test]
    fn a_missed_switch_starts_a_new_following() {
        let mut t = ThreadSched::new(7, 0);
        let read = t.mark(10);
        // The switch out at 100 was missed; back in at 9_000 while the
        // account says it ran all along.
        assert_eq!(t.switch_in(9_000), (None, false));
        let write = t.mark(9_500);
        assert_ne!(read.generation, write.generation);
        assert_eq!(Split::between(Some(read), Some(write), 9_490), None);
        // Out twice in a row (a switch in missed): the same.
        let g = t.generation;
        assert!(t.switch_out(9_600, true));
        assert!(!t.switch_out(9_700, false));
        assert_ne!(t.generation, g);
        // Both keep the account's own rules from there.
        assert_eq!(t.switch_in(9_800), (None, true));
        assert_eq!(t.mark(9_800).blocked_ns, 100);
    }

    #[test]
    fn prev_state_tells_preempted_from_asleep() {
        assert!(switched_out_runnable(0));
        assert!(switched_out_runnable(0x100));
        assert!(switched_out_runnable(0x101)); // preempted while going to sleep
        assert!(!switched_out_runnable(0x1)); // S
        assert!(!switched_out_runnable(0x2)); // D
        assert!(!switched_out_runnable(0x80)); // I
    }

    #[test]
    fn raw_prev_state_tells_preempted_from_asleep() {
        assert!(switched_out_runnable_raw(false, 0)); // running (signal pending)
        assert!(switched_out_runnable_raw(true, 0x1)); // preempted on its way to sleep
        assert!(!switched_out_runnable_raw(false, 0x1)); // TASK_INTERRUPTIBLE
        assert!(!switched_out_runnable_raw(false, 0x2)); // TASK_UNINTERRUPTIBLE
        assert!(!switched_out_runnable_raw(false, 0x402)); // TASK_IDLE (with TASK_NOLOAD)
    }

    #[test]
    fn split_parts_sum_to_process_time() {
        let mut t = ThreadSched::new(7, 0);
        let read = t.mark(100);
        t.switch_out(300, true); // preempted: 300..900 runnable
        t.switch_in(900);
        t.switch_out(1_000, false); // asleep 1000..1400
        t.wake(1_400);
        t.switch_in(1_450);
        let write = t.mark(2_100);
        let s = Split::between(Some(read), Some(write), 2_000).expect("one following");
        assert_eq!(
            s,
            Split {
                on_cpu_ns: 200 + 100 + 650,
                runnable_ns: 650,
                blocked_ns: 400
            }
        );
        assert_eq!(s.on_cpu_ns + s.runnable_ns + s.blocked_ns, 2_000);
        // Skewed marks never make the parts exceed the whole.
        let skew = Mark {
            runnable_ns: 10_000,
            ..write
        };
        let s = Split::between(Some(read), Some(skew), 2_000).expect("one following");
        assert_eq!((s.on_cpu_ns, s.runnable_ns, s.blocked_ns), (0, 2_000, 0));
        // Another following of the thread, or none: no split.
        let other = Mark {
            generation: 3,
            ..write
        };
        assert_eq!(Split::between(Some(read), Some(other), 2_000), None);
        assert_eq!(Split::between(None, Some(write), 2_000), None);
    }

    #[test]
    fn thread_bits_hold_the_followed_ids() {
        let mut bits = ThreadBits::default();
        for tid in [1, 63, 64, 65_601, 4_194_303] {
            assert!(!bits.has(tid));
            bits.set(tid);
            assert!(bits.has(tid), "{tid}");
        }
        assert!(!bits.has(2) && !bits.has(66));
        // Ids 65536 apart share a bit: the map behind the filter decides.
        assert!(bits.has(1 + 65_536));
    }

    #[test]
    fn runnable_part_of_a_window() {
        let mut t = ThreadSched::new(7, 0);
        for k in 0..6u64 {
            // Runnable [1000k + 100, 1000k + 300).
            t.switch_out(1_000 * k + 100, true);
            t.switch_in(1_000 * k + 300);
        }
        // Only the last four intervals are remembered.
        assert_eq!(t.runnable_within(0, 10_000), 4 * 200);
        assert_eq!(t.runnable_within(5_200, 5_250), 50);
        assert_eq!(t.runnable_within(5_300, 6_000), 0);
        t.switch_out(7_000, true);
        assert_eq!(t.runnable_within(5_000, 7_500), 200 + 500);
    }
}
