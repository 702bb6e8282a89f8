//! Per-syscall cost of live L7 capture (l7.bpf.c on the syscall tracepoints), as the CPU time
//! (user + system) of one thread running request/response exchanges over a loopback connection
//! both ends of which it owns: client write, server read, server write, client read (4 syscalls
//! of 200 bytes). Measured in one run against its own baseline (programs not attached):
//!   - unknown protocol: muted in the kernel after the first bytes (the path of every non-L7
//!     socket, e.g. iperf3's data);
//!   - HTTP: the client's calls are copied and shipped on the ring (drained by the main thread
//!     like the agent does), the server's end is muted as the server of a local client;
//!   - pipe: a file that is not a socket (one lookup per call).
//!
//! Best of ROUNDS rounds (the machine may be shared); prints ns per syscall and the added cost
//! against the baseline. Needs root (loads BPF); prints a notice and exits otherwise.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fathom_bpf::abi::l7::L7Counter;
use fathom_bpf::l7::{L7Config, L7Sensor};

const EXCHANGES: u32 = 50_000;
const ROUNDS: usize = 5;
const MSG: usize = 200;
const SYSCALLS_PER_EXCHANGE: f64 = 4.0;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// (client write end, server read end, server write end, client read end).
trait Pair {
    fn exchange(&mut self, req: &[u8], resp: &[u8], buf: &mut [u8]);
}

struct Tcp {
    client: TcpStream,
    server: TcpStream,
}

impl Tcp {
    /// A loopback connection whose first bytes are `first` (the kernel classifies on them).
    fn new(first: &[u8]) -> Tcp {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (server, _) = l.accept().expect("accept");
        client.set_nodelay(true).expect("nodelay");
        server.set_nodelay(true).expect("nodelay");
        let mut t = Tcp { client, server };
        let mut buf = vec![0u8; MSG];
        t.exchange(first, first, &mut buf);
        t
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) {
    r.read_exact(buf).expect("read");
}

impl Pair for Tcp {
    fn exchange(&mut self, req: &[u8], resp: &[u8], buf: &mut [u8]) {
        self.client.write_all(req).expect("write");
        read_exact(&mut self.server, &mut buf[..req.len()]);
        self.server.write_all(resp).expect("write");
        read_exact(&mut self.client, &mut buf[..resp.len()]);
    }
}

struct Pipes {
    to_server: (std::fs::File, std::fs::File),
    to_client: (std::fs::File, std::fs::File),
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe");
    // SAFETY: both fds were just returned by pipe() and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (r.into(), w.into())
}

impl Pair for Pipes {
    fn exchange(&mut self, req: &[u8], resp: &[u8], buf: &mut [u8]) {
        self.to_server.1.write_all(req).expect("write");
        read_exact(&mut self.to_server.0, &mut buf[..req.len()]);
        self.to_client.1.write_all(resp).expect("write");
        read_exact(&mut self.to_client.0, &mut buf[..resp.len()]);
    }
}

fn http_messages() -> (Vec<u8>, Vec<u8>) {
    let mut req = b"GET /file HTTP/1.1\r\nHost: bench\r\nX-Pad: ".to_vec();
    req.resize(MSG - 4, b'a');
    req.extend_from_slice(b"\r\n\r\n");
    let head_len = "HTTP/1.1 200 OK\r\nContent-Length: 160\r\n\r\n".len();
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        MSG - head_len
    )
    .into_bytes();
    resp.resize(MSG, b'x');
    (req, resp)
}

/// CPU ns per syscall, best of ROUNDS, on a thread of its own.
fn measure<P: Pair + Send + 'static>(
    make: impl FnOnce() -> P + Send + 'static,
    req: Vec<u8>,
    resp: Vec<u8>,
) -> f64 {
    std::thread::spawn(move || {
        let mut p = make();
        let mut buf = vec![0u8; MSG];
        (0..ROUNDS)
            .map(|_| {
                let t0 = thread_cpu_ns();
                for _ in 0..EXCHANGES {
                    p.exchange(&req, &resp, &mut buf);
                }
                (thread_cpu_ns() - t0) as f64 / (EXCHANGES as f64 * SYSCALLS_PER_EXCHANGE)
            })
            .fold(f64::INFINITY, f64::min)
    })
    .join()
    .expect("bench thread")
}

/// `measure` while the main thread drains the ring (as the agent's L7 thread does).
fn measure_draining<P: Pair + Send + 'static>(
    sensor: &L7Sensor,
    make: impl FnOnce() -> P + Send + 'static,
    req: Vec<u8>,
    resp: Vec<u8>,
) -> (f64, u64) {
    let events = Rc::new(Cell::new(0u64));
    let seen = Rc::clone(&events);
    let me = std::process::id();
    let rb = sensor
        .ring_buffer(
            move |e| {
                if e.pid == me {
                    seen.set(seen.get() + 1)
                }
            },
            || {},
        )
        .expect("ringbuf");
    let done = Arc::new(AtomicBool::new(false));
    let done_w = Arc::clone(&done);
    let worker = std::thread::spawn(move || {
        let ns = measure(make, req, resp);
        done_w.store(true, Ordering::Relaxed);
        ns
    });
    while !done.load(Ordering::Relaxed) {
        let _ = rb.poll(Duration::from_millis(50));
    }
    let ns = worker.join().expect("worker");
    let _ = rb.poll(Duration::ZERO);
    (ns, events.get())
}

fn main() {
    let unknown = vec![0xA5u8; MSG];
    let (req, resp) = http_messages();
    let pipes = || Pipes {
        to_server: pipe(),
        to_client: pipe(),
    };

    let base_tcp = measure(|| Tcp::new(&[0xA5; MSG]), unknown.clone(), unknown.clone());
    let base_pipe = measure(pipes, unknown.clone(), unknown.clone());

    let cfg = L7Config {
        self_tgid: 0, // this process is the one measured
        ..Default::default()
    };
    let Ok(sensor) = L7Sensor::load(&cfg) else {
        eprintln!("l7_syscalls bench: cannot load l7.bpf.c (not root?): skipped");
        return;
    };
    let (muted, _) = measure_draining(
        &sensor,
        || Tcp::new(&[0xA5; MSG]),
        unknown.clone(),
        unknown.clone(),
    );
    let (pipe_on, _) = measure_draining(&sensor, pipes, unknown.clone(), unknown.clone());
    let first = req.clone();
    let (http, shipped) = measure_draining(&sensor, move || Tcp::new(&first), req, resp);
    let lost = sensor.counter(L7Counter::EventsLost);
    drop(sensor);

    let base_tcp2 = measure(|| Tcp::new(&[0xA5; MSG]), unknown.clone(), unknown);
    let base = base_tcp.min(base_tcp2);
    println!(
        "l7 syscall cost, CPU ns per {MSG}-byte read/write (best of {ROUNDS} x {} calls):",
        EXCHANGES as f64 * SYSCALLS_PER_EXCHANGE
    );
    println!("  TCP loopback, no programs:             {base:7.0}");
    println!(
        "  TCP, unknown protocol (muted):         {muted:7.0}  (+{:.0} ns, ratio {:.3})",
        muted - base,
        muted / base
    );
    println!(
        "  TCP, HTTP (client shipped, server muted): {http:7.0}  (+{:.0} ns, ratio {:.3}; {shipped} events of this process, {lost} lost on the host)",
        http - base,
        http / base
    );
    println!(
        "  pipe: no programs {base_pipe:.0}, with l7 {pipe_on:.0}  (+{:.0} ns, ratio {:.3})",
        pipe_on - base_pipe,
        pipe_on / base_pipe
    );
}
