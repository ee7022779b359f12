//! A minimal WebDriver client for Debian's headless Chromium through chromedriver on
//! 127.0.0.1, shared by the report's browser test and its benchmark (included with
//! `#[path]`). Just what they need: open a URL, run a script, read the browser's console
//! log, take a screenshot. The chromedriver process is ours and ends with the client.

#![allow(dead_code)]

use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest a single WebDriver command may take (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    profile: PathBuf,
}

/// Why there is no browser here, when there is none.
pub fn unavailable() -> Option<String> {
    for p in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(p).exists() {
            return Some(format!(
                "{p} not found (install Debian's chromium and chromium-driver)"
            ));
        }
    }
    None
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Browser {
    /// Start chromedriver and a headless Chromium session with a fresh profile;
    /// `width`×`height` is the window (screenshots are this size).
    pub fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent = ureq::AgentBuilder::new().timeout(COMMAND_TIMEOUT).build();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = agent
                .get(&format!("{base}/status"))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile =
            std::env::temp_dir().join(format!("fl-chromium-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            agent,
            profile,
        };
        let v = b.post("/session", caps);
        b.session = v["sessionId"].as_str().expect("session id").to_string();
        b
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        match self.agent.post(&url).send_json(body) {
            Ok(r) => r.into_json::<Value>().expect("json")["value"].take(),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "WebDriver {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("WebDriver {path}: {e}"),
        }
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let r = self
            .agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        r.into_json::<Value>().expect("json")["value"].take()
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Navigate and wait for the load event.
    pub fn goto(&self, url: &str) {
        self.post(&self.s("/url"), json!({ "url": url }));
    }

    /// Run `script` (a function body; `arguments` holds `args`) and return its value.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.post(
            &self.s("/execute/sync"),
            json!({ "script": script, "args": args }),
        )
    }

    /// Poll `expr` until it is truthy; panics after `timeout`.
    pub fn wait_for(&self, expr: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let v = self.exec(&format!("return {expr};"), json!([]));
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            assert!(started.elapsed() < timeout, "timed out waiting for {expr}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Console messages and uncaught errors since the last call.
    pub fn log(&self) -> Vec<Value> {
        self.post(&self.s("/se/log"), json!({"type": "browser"}))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The SEVERE entries of [`Browser::log`] (console.error, uncaught exceptions, failed
    /// loads).
    pub fn errors(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Save a screenshot of the window as PNG.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.get(&self.s("/screenshot"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64 screenshot"))
            .expect("decode screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Move the mouse to client coordinates (x, y), as a person hovering.
    pub fn hover(&self, x: f64, y: f64) {
        self.post(
            &self.s("/actions"),
            json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [{"type": "pointerMove", "duration": 0, "x": x.round() as i64, "y": y.round() as i64, "origin": "viewport"}]}]}),
        );
    }

    /// A file:// URL for a local path.
    pub fn file_url(path: &Path) -> String {
        format!(
            "file://{}",
            path.canonicalize().expect("canonical path").display()
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(&format!("{}{}", self.base, self.s("")))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
