//! Where a proxy thread's time is split between running, runnable (waiting
//! for a CPU: preempted, throttled, or woken and not yet run) and blocked
//! (asleep). The kernel follows each proxy thread it has seen read or write
//! through the scheduler's switches and its own run-queue wait
//! ([`ThreadSched`]), and stamps every read and write with the thread's
//! account at that instant
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

/// The global of the kernel object that holds where `task_struct` keeps
/// `sched_info.run_delay` (from the kernel's BTF): the time the task has
/// waited on a run queue in all, which the kernel brings up to date when
/// the task gets a CPU. It is the second field of
/// /proc/<pid>/task/<tid>/schedstat.
pub const TASK_RUN_DELAY_OFFSET: &str = "TASK_RUN_DELAY_OFFSET";

/// One followed thread's scheduler account since the kernel began to
/// follow it (its first read or write seen). The switches, on the CPU the
/// thread leaves or takes, tell when it ran. Switched out runnable
/// (preempted, or throttled), it stays runnable until it runs again. Of a
/// sleep (switched out asleep, until it runs again), the part after its
/// wake-up is what the kernel's run-queue wait of the thread grew by over
/// it, read once the thread runs (at its reads and writes, and when it
/// next leaves its CPU). No wake-up needs watching, and every change is
/// made on the thread's own CPU. (The run-queue wait alone would not do:
/// it leaves out some throttled periods, as measured on Linux 6.18.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadSched {
    pub tgid: u32,
    /// [`RUNNING`], [`RUNNABLE`] (switched out runnable) or [`BLOCKED`]
    /// (switched out asleep), since `since_ns`.
    pub state: u32,
    /// Tells one following of a thread from another (never 0).
    pub generation: u32,
    /// Next slot of the runnable history to write.
    pub next: u32,
    pub since_ns: u64,
    /// The kernel's run-queue wait of the thread when it last went to sleep.
    pub delay_out_ns: u64,
    /// While the thread runs after a sleep: how long the sleep lasted, to
    /// be split when its run-queue wait is read (0: no sleep pending).
    pub slept_ns: u64,
    /// Time spent runnable and blocked, the pending sleep left out.
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
            delay_out_ns: 0,
            slept_ns: 0,
            runnable_ns: 0,
            blocked_ns: 0,
            runnable_start: [0; RUNNABLE_HISTORY],
            runnable_end: [0; RUNNABLE_HISTORY],
        }
    }

    /// The runnable end of the pending sleep, given the kernel's run-queue
    /// wait now: what the wait grew by since the thread went to sleep, held
    /// within the sleep (the kernel's run-queue clock and this one may
    /// differ by a little over it).
    const fn woken_wait(&self, run_delay: u64) -> u64 {
        let w = run_delay.saturating_sub(self.delay_out_ns);
        if w < self.slept_ns { w } else { self.slept_ns }
    }

    fn remember(&mut self, start: u64, end: u64) {
        let i = (self.next as usize) % RUNNABLE_HISTORY;
        self.runnable_start[i] = start;
        self.runnable_end[i] = end;
        self.next = self.next.wrapping_add(1);
    }

    /// A switch was missed (the account contradicts what the scheduler
    /// just did): start a new following at `now`, in `state`, so that no
    /// forward is split across the gap.
    fn resync(&mut self, now: u64, state: u32) {
        let fresh = (now as u32) | 1;
        self.generation = if fresh == self.generation {
            fresh.wrapping_add(2)
        } else {
            fresh
        };
        self.state = state;
        self.since_ns = now;
        self.slept_ns = 0;
    }

    /// Settles the pending sleep with the thread's run-queue wait now:
    /// returns its runnable end (None: no sleep pending). A wait read
    /// below the one at the sleep's start (an unreadable wait reads 0)
    /// leaves the whole sleep blocked.
    fn settle(&mut self, run_delay: u64) -> Option<u64> {
        if self.slept_ns == 0 {
            return None;
        }
        let w = self.woken_wait(run_delay);
        self.runnable_ns += w;
        self.blocked_ns += self.slept_ns - w;
        if w > 0 {
            self.remember(self.since_ns.saturating_sub(w), self.since_ns);
        }
        self.slept_ns = 0;
        Some(w)
    }

    /// The thread left its CPU at `now`, still runnable or going to sleep;
    /// `run_delay` reads its run-queue wait, asked only when needed (a
    /// sleep to settle or to begin). Returns the runnable end of the sleep
    /// before the stint that ends, if it was still pending, and false when
    /// the thread was not running by this account (a missed switch in: the
    /// following starts over).
    pub fn switch_out(
        &mut self,
        now: u64,
        runnable: bool,
        run_delay: impl FnOnce() -> u64,
    ) -> (Option<u64>, bool) {
        let state = if runnable { RUNNABLE } else { BLOCKED };
        let consistent = self.state == RUNNING;
        let delay = if consistent && self.slept_ns > 0 || !runnable {
            run_delay()
        } else {
            0
        };
        let waited = if consistent {
            self.settle(delay)
        } else {
            self.resync(now, state);
            None
        };
        self.state = state;
        self.since_ns = now;
        self.delay_out_ns = delay;
        (waited, consistent)
    }

    /// The thread got a CPU at `now`; returns how long it waited runnable
    /// when it had been switched out runnable (after a sleep, that is
    /// settled later), and false when it was running by this account (a
    /// missed switch out: the following starts over).
    pub fn switch_in(&mut self, now: u64) -> (Option<u64>, bool) {
        let gap = now.saturating_sub(self.since_ns);
        let waited = match self.state {
            RUNNING => {
                self.resync(now, RUNNING);
                return (None, false);
            }
            RUNNABLE => {
                self.runnable_ns += gap;
                self.remember(self.since_ns, now);
                Some(gap)
            }
            // At least 1: a sleep is pending.
            _ => {
                self.slept_ns = if gap > 0 { gap } else { 1 };
                None
            }
        };
        self.state = RUNNING;
        self.since_ns = now;
        (waited, true)
    }

    /// The account at `now`, taken by the thread itself as it reads or
    /// writes; `run_delay` reads its run-queue wait, asked only to settle a
    /// sleep, whose runnable end is returned too (with when the stint after
    /// it began). Found off its CPU (its switch in was missed), the
    /// following starts over from `now`.
    pub fn mark(
        &mut self,
        now: u64,
        run_delay: impl FnOnce() -> u64,
    ) -> (Mark, Option<(u64, u64)>) {
        if self.state != RUNNING {
            self.resync(now, RUNNING);
        }
        let claim = self.claim_sleep();
        let delay = if claim.is_some() { run_delay() } else { 0 };
        self.settle_claimed(claim, delay)
    }

    /// The first half of [`Self::mark`]: takes the pending sleep, (its
    /// length, the start of the stint after it), before the wait is read.
    /// A hook that can be preempted (a trampoline's, on a preemptible
    /// kernel) may see its thread switched out and in meanwhile, and that
    /// switch out must find no sleep to settle. The store is volatile so
    /// that it is made before the read, not deferred past it.
    pub fn claim_sleep(&mut self) -> Option<(u64, u64)> {
        let slept = self.slept_ns;
        if slept == 0 {
            return None;
        }
        // SAFETY: a plain store to a field of `self`.
        unsafe { core::ptr::write_volatile(&mut self.slept_ns, 0) };
        Some((slept, self.since_ns))
    }

    /// The second half of [`Self::mark`]: settles the claimed sleep with
    /// the wait read since, unless a switch moved the account in between
    /// (then the sleep's split is lost, all of it counted as blocked: it
    /// is rare, and counting it twice would be worse).
    pub fn settle_claimed(
        &mut self,
        claim: Option<(u64, u64)>,
        run_delay: u64,
    ) -> (Mark, Option<(u64, u64)>) {
        let waited = match claim {
            Some((slept, since)) if self.since_ns == since && self.state == RUNNING => {
                self.slept_ns = slept;
                self.settle(run_delay).map(|w| (since, w))
            }
            Some((slept, _)) => {
                self.blocked_ns += slept;
                None
            }
            None => None,
        };
        let mark = Mark {
            generation: self.generation,
            runnable_ns: self.runnable_ns,
            blocked_ns: self.blocked_ns,
        };
        (mark, waited)
    }

    /// Time within [from, to) the thread spent runnable, as far as its
    /// history reaches (the last [`RUNNABLE_HISTORY`] intervals; a mark
    /// settles the sleep before it first).
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

    /// A run-queue wait that must not be read.
    fn unread() -> u64 {
        panic!("the run-queue wait was read when not needed")
    }

    #[test]
    fn states_partition_the_time_followed() {
        let mut t = ThreadSched::new(7, 1_000);
        // Runs 1000..1500 and sleeps (its run-queue wait then 50_000),
        // woken at 4000, runs from 4200 (the kernel adds the 200 when it
        // gets the CPU), preempted at 5000, back at 5300.
        assert_eq!(t.switch_out(1_500, false, || 50_000), (None, true));
        assert_eq!(t.switch_in(4_200), (None, true));
        assert_eq!(t.switch_out(5_000, true, || 50_200), (Some(200), true));
        assert_eq!(t.switch_in(5_300), (Some(300), true));
        let (m, waited) = t.mark(6_000, unread);
        assert_eq!(waited, None);
        assert_eq!((m.runnable_ns, m.blocked_ns), (500, 2_500));
        let ran = 6_000 - 1_000 - m.runnable_ns - m.blocked_ns;
        assert_eq!(ran, 500 + 800 + 700);
        // Preempted, or a stint with no sleep before it, reads no wait.
        assert_eq!(t.switch_out(6_500, true, unread), (None, true));
        assert_eq!(t.switch_in(7_000), (Some(500), true));
        assert_eq!(t.mark(7_000, unread).0.runnable_ns, 1_000);
    }

    #[test]
    fn a_sleep_splits_into_blocked_then_runnable_when_the_thread_reads() {
        let mut t = ThreadSched::new(7, 0);
        t.switch_out(100, false, || 0);
        // Asleep 100..700, woken, runs at 800: the kernel's wait grew 100.
        assert_eq!(t.switch_in(800), (None, true));
        let (m, waited) = t.mark(850, || 100);
        assert_eq!((m.blocked_ns, m.runnable_ns), (600, 100));
        assert_eq!(waited, Some((800, 100)));
        assert_eq!(t.runnable_within(0, 850), 100);
        assert_eq!(t.runnable_within(750, 850), 50);
        // Settled once: neither the next mark nor the switch out reads it.
        assert_eq!(t.mark(880, unread).0, m);
        assert_eq!(t.switch_out(900, true, unread), (None, true));
    }

    /// A thread followed from 0, asleep from 100 (its run-queue wait then
    /// `wait`), running again from `back`.
    fn slept_from_100(wait: u64, back: u64) -> ThreadSched {
        let mut t = ThreadSched::new(7, 0);
        t.switch_out(100, false, || wait);
        t.switch_in(back);
        t
    }

    #[test]
    fn a_sleep_no_read_settled_is_settled_as_the_thread_leaves() {
        let mut t = slept_from_100(1_000, 800);
        // Asleep again at 900: its wait is read once, for both sleeps.
        assert_eq!(t.switch_out(900, false, || 1_100), (Some(100), true));
        assert_eq!(t.switch_in(1_500), (None, true));
        let (m, waited) = t.mark(1_600, || 1_150);
        assert_eq!(waited, Some((1_500, 50)));
        assert_eq!((m.runnable_ns, m.blocked_ns), (150, 600 + 550));
    }

    #[test]
    fn a_wait_longer_than_its_sleep_is_held_within_it() {
        // The kernel's run-queue clock ran ahead of this one over the sleep.
        let mut t = slept_from_100(1_000, 400);
        let (m, waited) = t.mark(450, || 1_350);
        assert_eq!((m.runnable_ns, m.blocked_ns), (300, 0));
        assert_eq!(waited, Some((400, 300)));
    }

    #[test]
    fn a_sleep_settled_at_a_switch_out_splits_the_forward_around_it() {
        let mut t = ThreadSched::new(7, 0);
        let (read, _) = t.mark(100, unread);
        // Asleep 200..800, woken at 700; it runs 800..900 with no read or
        // write, and is preempted at 900 (settled there), back at 1000.
        t.switch_out(200, false, || 5_000);
        t.switch_in(800);
        assert_eq!(t.switch_out(900, true, || 5_100), (Some(100), true));
        t.switch_in(1_000);
        let (write, waited) = t.mark(1_100, unread);
        assert_eq!(waited, None);
        let s = Split::between(Some(read), Some(write), 1_000).expect("one following");
        assert_eq!(
            (s.on_cpu_ns, s.runnable_ns, s.blocked_ns),
            (100 + 100 + 100, 100 + 100, 500)
        );
        assert_eq!(t.runnable_within(0, 1_100), 200);
    }

    #[test]
    fn an_unreadable_wait_leaves_the_sleep_blocked() {
        let mut t = slept_from_100(9_000, 700);
        // The read failed and gave 0.
        let (m, waited) = t.mark(750, || 0);
        assert_eq!(waited, Some((700, 0)));
        assert_eq!((m.runnable_ns, m.blocked_ns), (0, 600));
        // A zero wait leaves no interval in the history.
        assert_eq!(t.next, 0);
    }

    #[test]
    fn a_switch_while_a_mark_reads_the_wait_settles_nothing_twice() {
        let mut t = ThreadSched::new(7, 0);
        t.switch_out(100, false, || 0);
        t.switch_in(700);
        // The mark is preempted as it reads the wait: the thread is
        // switched out (runnable) and back in by the hook meanwhile.
        let claim = t.claim_sleep();
        assert_eq!(claim, Some((600, 700)));
        assert_eq!(t.switch_out(760, true, unread), (None, true));
        assert_eq!(t.switch_in(800), (Some(40), true));
        let (m, waited) = t.settle_claimed(claim, 50);
        // The sleep is counted once, as blocked; the preemption as runnable.
        assert_eq!(waited, None);
        assert_eq!((m.runnable_ns, m.blocked_ns), (40, 600));
        // Undisturbed, the two halves are the mark.
        let mut u = ThreadSched::new(7, 0);
        u.switch_out(100, false, || 0);
        u.switch_in(700);
        let claim = u.claim_sleep();
        assert_eq!(u.settle_claimed(claim, 50).1, Some((700, 50)));
    }

    #[test]
    fn throttled_after_a_runnable_switch_out_is_runnable_whatever_the_wait() {
        // The run-queue wait may leave throttled time out: the whole time
        // off CPU after a runnable switch out is still runnable.
        let mut t = ThreadSched::new(7, 0);
        t.switch_out(100, true, unread);
        assert_eq!(t.switch_in(80_100), (Some(80_000), true));
        let (m, _) = t.mark(80_200, unread);
        assert_eq!((m.runnable_ns, m.blocked_ns), (80_000, 0));
    }

    #[test]
    fn a_missed_switch_starts_a_new_following() {
        let mut t = ThreadSched::new(7, 0);
        let (read, _) = t.mark(10, unread);
        // The switch out at 100 was missed; back in at 9_000 while the
        // account says it ran all along.
        assert_eq!(t.switch_in(9_000), (None, false));
        let (write, _) = t.mark(9_500, unread);
        assert_ne!(read.generation, write.generation);
        assert_eq!(Split::between(Some(read), Some(write), 9_490), None);
        // Out twice in a row (a switch in missed): the same.
        let g = t.generation;
        assert!(t.switch_out(9_600, true, unread).1);
        assert!(!t.switch_out(9_700, false, || 300).1);
        assert_ne!(t.generation, g);
        // Both keep the account's own rules from there.
        assert_eq!(t.switch_in(9_800), (None, true));
        assert_eq!(t.mark(9_800, || 300).0.blocked_ns, 100);
        // Found off its CPU by its own read (the switch in missed): a new
        // following from the read, with no sleep pending.
        t.switch_out(9_900, false, || 300);
        let g = t.generation;
        let (m, waited) = t.mark(10_000, unread);
        assert_ne!(m.generation, g);
        assert_eq!((t.state, waited), (RUNNING, None));
        assert_eq!(t.switch_out(10_100, true, unread), (None, true));
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
        let (read, _) = t.mark(100, unread);
        t.switch_out(300, true, unread); // preempted: 300..900 runnable
        t.switch_in(900);
        t.switch_out(1_000, false, || 600); // asleep 1000..1400, runnable to 1450
        t.switch_in(1_450);
        let (write, _) = t.mark(2_100, || 650);
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
            t.switch_out(1_000 * k + 100, true, unread);
            t.switch_in(1_000 * k + 300);
        }
        // Only the last four intervals are remembered.
        assert_eq!(t.runnable_within(0, 10_000), 4 * 200);
        assert_eq!(t.runnable_within(5_200, 5_250), 50);
        assert_eq!(t.runnable_within(5_300, 6_000), 0);
        // A sleep's runnable end joins them once settled.
        t.switch_out(7_000, false, || 0);
        t.switch_in(7_600);
        t.mark(7_700, || 400);
        assert_eq!(t.runnable_within(5_000, 7_700), 200 + 400);
    }
}
