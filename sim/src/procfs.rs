//! CPU time from Linux's `/proc`: a process, a thread of this process, the whole machine,
//! and which local process listens on a TCP port; `None` wherever `/proc` is not.

use std::net::SocketAddr;

/// Linux's `USER_HZ`: clock ticks per second in `/proc`.
const TICKS_PER_SECOND: f64 = 100.0;

use relay::process::stat_cpu_seconds as stat_cpu;

/// CPU seconds process `pid` has used.
pub fn process_cpu(pid: u32) -> Option<f64> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds of each thread of process `pid`, by thread id.
pub fn threads_cpu(pid: u32) -> Vec<(u32, f64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            let cpu = stat_cpu(&std::fs::read_to_string(t.path().join("stat")).ok()?)?;
            Some((tid, cpu))
        })
        .collect()
}

/// Seconds a thread has wanted a core since it started: running, or runnable and waiting
/// for one (the first two fields of its `schedstat`, in ns). Beside its CPU time, how much
/// more it would have used on an idle machine.
fn wanted_in(schedstat: &str) -> Option<f64> {
    let mut f = schedstat.split_whitespace();
    let run: f64 = f.next()?.parse().ok()?;
    let wait: f64 = f.next()?.parse().ok()?;
    Some((run + wait) / 1e9)
}

/// Seconds thread `tid` of process `pid` has wanted a core (see [`wanted_in`]).
pub fn thread_wanted(pid: u32, tid: u32) -> Option<f64> {
    wanted_in(&std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?)
}

/// This thread's id (Linux tid).
pub fn this_thread() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU seconds thread `tid` of this process has used.
pub fn thread_cpu(tid: u32) -> Option<f64> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?)
}

/// CPU seconds this process has used.
pub fn own_cpu() -> Option<f64> {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// The machine's cores, as `/proc/stat` counts them (affinity and quotas aside).
pub fn cores() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let n = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    (n > 0).then_some(n as f64)
}

/// Busy CPU seconds of the whole machine, all cores summed (everything but idle and
/// I/O wait), from the first line of `/proc/stat`.
pub fn machine_busy() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    busy_in(text.lines().next()?)
}

fn busy_in(cpu_line: &str) -> Option<f64> {
    let mut f = cpu_line.split_whitespace();
    if f.next()? != "cpu" {
        return None;
    }
    let v: Vec<f64> = f.filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    Some(busy / TICKS_PER_SECOND)
}

/// The local process listening on `addr`'s TCP port, when `addr` is on this machine and
/// `/proc` lets this user see it.
pub fn listening_pid(addr: SocketAddr) -> Option<u32> {
    if !addr.ip().is_loopback() {
        return None;
    }
    let port = format!("{:04X}", addr.port());
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local address is HEX_IP:HEX_PORT; state 0A is LISTEN
            let listening = f.get(3) == Some(&"0A");
            if listening && f.get(1).is_some_and(|a| a.ends_with(&format!(":{port}"))) {
                inodes.extend(f.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_the_machine() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(own_cpu().is_some_and(|c| c > 0.0));
        let tid = this_thread().expect("a thread id");
        assert!(thread_cpu(tid).is_some());
        let threads = threads_cpu(std::process::id());
        assert!(
            threads.iter().any(|(t, c)| *t == tid && *c >= 0.0),
            "{threads:?}"
        );
        assert!(machine_busy().is_some_and(|b| b > 0.0));
        // the spin above ran on this thread: it wanted at least that much of a core
        let wanted = thread_wanted(std::process::id(), tid);
        assert!(wanted.is_some_and(|w| w >= 0.03), "{wanted:?}");
        assert_eq!(wanted_in("2000000000 500000000 7"), Some(2.5));
        assert_eq!(wanted_in("x"), None);
        assert!(cores().is_some_and(|c| c >= 1.0));
        assert_eq!(
            busy_in("cpu  100 0 50 1000 7 3 2 1 0 0"),
            Some((100.0 + 50.0 + 3.0 + 2.0 + 1.0) / 100.0)
        );
        assert_eq!(busy_in("intr 1 2 3"), None);
    }

    #[test]
    fn finds_who_listens_on_a_local_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert_eq!(listening_pid(addr), Some(std::process::id()));
        drop(listener);
        assert_eq!(listening_pid(addr), None);
        assert_eq!(listening_pid("10.1.2.3:80".parse().expect("addr")), None);
    }
}
