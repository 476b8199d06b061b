//! Headless Chromium, really started, driven over the DevTools protocol: what the dashboard
//! tests use as "a real browser". No WebDriver: one websocket to the page's target, JSON
//! commands in, results out.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
}

/// The Chromium binary: Debian's `chromium` (scripts/test.sh installs it).
fn binary() -> String {
    for b in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return b.to_string();
        }
    }
    panic!("no Chromium on PATH: install Debian's `chromium` (./scripts/test.sh does)");
}

impl Browser {
    /// Starts a headless browser with a fresh profile and attaches to its blank page.
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(binary());
        // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd
            .args([
                "--headless",
                "--no-sandbox", // root in a container: Chromium's sandbox needs user namespaces
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--window-size=1440,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            // Its own session (and so process group, set in pre_exec): Drop kills the
            // renderers and helpers with it, and nothing of it reaches the tests' terminal.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting chromium");
        // The browser names its DevTools endpoint on stderr; keep draining stderr after.
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let browser_ws = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!("chromium did not open its DevTools endpoint within 60 s");
            }
        };
        let port = browser_ws
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .unwrap()
            .to_string();
        let targets: Value = serde_json::from_str(
            &ureq::get(format!("http://127.0.0.1:{port}/json/list"))
                .call()
                .unwrap()
                .into_body()
                .read_to_string()
                .unwrap(),
        )
        .unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target")["webSocketDebuggerUrl"]
            .as_str()
            .unwrap()
            .to_string();
        let (mut ws, _) = tungstenite::connect(page).expect("attaching to the page");
        if let MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        let mut b = Browser {
            child,
            _profile: profile,
            ws,
            next: 0,
        };
        b.call("Page.enable", json!({}));
        b
    }

    /// One DevTools command; its result (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let m = self.ws.read().expect("reading from chromium");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// Evaluates `js` in the page (awaiting a promise); its value as JSON.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `js` until it is truthy; its value, or a panic naming `what` after `limit`. A
    /// throw counts as not yet (the page may still be loading).
    pub fn wait_for(&mut self, what: &str, js: &str, limit: Duration) -> Value {
        let until = Instant::now() + limit;
        loop {
            let r = self.call(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
            );
            let v = match r.get("exceptionDetails") {
                Some(_) => Value::Null,
                None => r["result"]["value"].clone(),
            };
            let truthy = !matches!(v, Value::Null | Value::Bool(false))
                && v != json!(0)
                && v != json!("")
                && v != json!([]);
            if truthy {
                return v;
            }
            if Instant::now() > until {
                let dom = self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''");
                panic!("{what}: not within {limit:?}; the page says:\n{dom}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A key press, as the keyboard sends it (to the focused element).
    pub fn key(&mut self, key: &str, code: u32) {
        for t in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({ "type": t, "key": key, "code": key, "windowsVirtualKeyCode": code }),
            );
        }
    }

    /// Text typed into the focused element.
    pub fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({ "text": text }));
    }

    /// A PNG of the viewport at `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
