//! The web UI end to end: an agent serving its UI on loopback, real traffic between lab pods,
//! and Debian's headless Chromium driven over WebDriver (chromedriver). Assertions read the
//! DOM's data attributes; screenshots are left in `<repo>/artifacts/ui/` for people to look
//! at. Needs root, `chromium` and `chromium-driver`.

mod support;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::*;

/// Longest wait for any one thing the page should show. The map refreshes every 5 s at most,
/// and the status (kernel drop counters) every 5 s.
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver on a free loopback port. It runs in its own process group so that the
/// browser it starts is killed with it when the test ends, assertion failures included.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        let d = Driver {
            child,
            port,
            profile: tempfile::tempdir().expect("profile dir"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver not listening");
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    async fn browser(&self) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1440,900",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.path().display()));
        let caps = json!({ "goog:chromeOptions": { "args": args } });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("WebDriver session (is chromium installed?)")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: kill(2) on the process group we created for our own child.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Browser processes that outlived the driver go too.
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/ui");
    std::fs::create_dir_all(&dir).expect("artifacts/ui");
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(artifacts().join(name), png).expect("write screenshot");
}

/// Poll `script` (a function body returning a value) until it returns something truthy.
async fn until(c: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = c.execute(script, vec![]).await.unwrap_or(Value::Null);
        let truthy = !matches!(&v, Value::Null | Value::Bool(false))
            && v.as_array().is_none_or(|a| !a.is_empty());
        if truthy {
            return v;
        }
        if Instant::now() > deadline {
            screenshot(c, "failure.png").await;
            panic!("timed out waiting for {what}; last answer: {v} (see artifacts/ui/failure.png)");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// The flow table's record rows, as a JS expression.
const ROWS: &str = "[...document.querySelectorAll('#flow-table tbody tr[data-row]')]";

async fn drive(c: &Client, web: u16, a: &fathom_lab::LabPod, b: &fathom_lab::LabPod) {
    c.goto(&format!("http://127.0.0.1:{web}/#map"))
        .await
        .expect("open the UI");

    // 1. The map, right on first load (server-side aggregation): both pods and their edge.
    until(
        c,
        "map nodes x/a, y/b and the edge between them",
        "return ['[data-node=\"x/a\"]', '[data-node=\"y/b\"]', '[data-edge=\"x/a->y/b\"]']
           .every((s) => document.querySelector(s))",
    )
    .await;
    let ports = until(
        c,
        "the edge's ports",
        "const t = document.querySelector('[data-label=\"x/a->y/b\"]'); return t && t.textContent",
    )
    .await;
    assert!(
        ports.as_str().is_some_and(|p| p.contains("tcp/8080")),
        "edge label: {ports}"
    );

    // 2. Live: a datagram to a closed port, sent while the page is open, turns the edge red.
    let st = a
        .command("python3")
        .args(["-c", &format!("import socket\nsocket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'x',('{}',7777))", b.ipv4)])
        .status()
        .expect("udp send");
    assert!(st.success());
    // And some traffic the other way, for the flow table's filter to remove.
    let st = b
        .command("python3")
        .args(["-c", &format!("import socket\nsocket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'y',('{}',9999))", a.ipv4)])
        .status()
        .expect("udp send");
    assert!(st.success());
    until(
        c,
        "the x/a->y/b edge marked with a NO_SOCKET drop",
        "const e = document.querySelector('[data-edge=\"x/a->y/b\"]');
         return e && e.dataset.status === 'drop' && e.dataset.reasons.split(',').includes('NO_SOCKET')",
    )
    .await;
    screenshot(c, "map.png").await;

    // 3. The drops view: the kernel's counter by reason, and the record with its pods.
    click(c, "a[data-tab=drops]").await;
    until(
        c,
        "NO_SOCKET in the drops view",
        "return document.querySelector('#drop-reasons [data-reason=NO_SOCKET]')
           && document.querySelector('#drop-table tr[data-reason=NO_SOCKET][data-src=\"x/a\"][data-dst=\"y/b\"]')",
    )
    .await;
    screenshot(c, "drops.png").await;

    // 4. The policy view has nothing yet, and says so.
    click(c, "a[data-tab=policy]").await;
    until(
        c,
        "the policy empty state",
        "return !document.getElementById('policy-empty').hidden && document.getElementById('view-policy').offsetParent !== null",
    )
    .await;
    screenshot(c, "policy.png").await;

    // 5. The flow table, filtered like `fathom observe --from-pod x/a`.
    click(c, "a[data-tab=flows]").await;
    until(
        c,
        "flows from both pods in the table",
        &format!("const src = new Set({ROWS}.map((r) => r.dataset.src)); return src.has('x/a') && src.has('y/b')"),
    )
    .await;
    let input = c
        .find(Locator::Css("#f-from_pod"))
        .await
        .expect("from-pod box");
    input.send_keys("x/a").await.expect("type x/a");
    click(c, "#f-apply").await;
    let srcs = until(
        c,
        "only flows from x/a",
        &format!("const r = {ROWS}; return r.length > 0 && r.every((x) => x.dataset.src === 'x/a') && r.map((x) => x.dataset.src)"),
    )
    .await;
    let cli = c
        .find(Locator::Css("#flow-cli"))
        .await
        .expect("cli echo")
        .text()
        .await
        .unwrap_or_default();
    assert!(cli.contains("--from-pod x/a"), "CLI echo: {cli} ({srcs})");
    screenshot(c, "flows.png").await;

    // 6. One flow's detail: both processes and the TCP figures.
    let row = c
        .find(Locator::XPath(
            "//table[@id='flow-table']//tr[@data-type='flow'][td[contains(., 'tcp/8080')]]",
        ))
        .await
        .expect("a tcp/8080 flow row");
    row.click().await.expect("open detail");
    let comms = until(
        c,
        "the detail drawer with the client's command",
        "const d = document.getElementById('detail');
         const c = [...d.querySelectorAll('[data-field=comm]')].map((e) => e.textContent);
         return !d.hidden && c.includes('curl') && c",
    )
    .await;
    assert_eq!(
        comms,
        json!(["curl", "python3"]),
        "client and server processes"
    );
    let text = c
        .find(Locator::Css("#detail-body"))
        .await
        .expect("detail body")
        .text()
        .await
        .unwrap_or_default();
    for want in ["x/a", "y/b", "handshake", "smoothed RTT", "out (src → dst)"] {
        assert!(
            text.contains(want),
            "{want:?} missing from the detail:\n{text}"
        );
    }
    screenshot(c, "detail.png").await;
}

#[test]
fn web_ui_map_drops_filtered_flows_and_detail() {
    let _s = serial();
    // A failure screenshot from an earlier run would mislead whoever reads the artifacts.
    let _ = std::fs::remove_file(artifacts().join("failure.png"));
    let lab = lab("e2eui");
    let web = free_port();
    let agent = Agent::start_with(&lab, &["--web-address", &format!("127.0.0.1:{web}")]);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();

    // An HTTP server in y/b and a client in x/a, before the page opens.
    let dir = tempfile::tempdir().expect("tempdir");
    let _srv = http_server(&b, dir.path(), 8080);
    let st = a
        .command("curl")
        .args(["-s", "-o", "/dev/null", &format!("http://{}:8080/", b.ipv4)])
        .status()
        .expect("curl");
    assert!(st.success());
    agent.wait_for(
        &["--from-pod", "x/a", "--port", "8080", "--event", "end"],
        "the curl flow's end",
        |r| !r.is_empty(),
    );

    let driver = Driver::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = driver.browser().await;
        drive(&c, web, &a, &b).await;
        let _ = c.close().await;
    });
    drop(driver);
    drop(agent);
}
