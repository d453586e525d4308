//! A real headless Chromium driven over WebDriver (fantoccini), for the dashboard's browser
//! tests: Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`; `PLUGSYNC_CHROMIUM` / `PLUGSYNC_CHROMEDRIVER` override). The
//! chromedriver is started on a free port in its own process group, so dropping the
//! [`Browser`] (also while a test panics) ends the WebDriver session, then that group: the
//! driver and the browser it started, nothing else.
//!
//! Calls are synchronous (each runs on the browser's own runtime), like the daemon helpers.
//! Missing binaries fail the test loudly with what to install.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Connector = hyper_util::client::legacy::connect::HttpConnector;

/// Width of the browser window; the height follows each page for full-page screenshots.
pub const WIDTH: u32 = 1440;

pub struct Browser {
    client: Option<Client>,
    driver: Child,
    rt: tokio::runtime::Runtime,
    /// Where screenshots go (created by [`Browser::start`]).
    pub shots: PathBuf,
    _profile: tempfile::TempDir,
}

fn binary(var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} not found: the dashboard's browser tests need Debian's `{package}` \
         (apt-get install chromium chromium-driver; .ci/run installs them) or {var} pointing at it",
        path.display()
    );
    path
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; screenshots go to `shots`.
    pub fn start(shots: &Path) -> Browser {
        let chromium = binary("PLUGSYNC_CHROMIUM", "/usr/bin/chromium", "chromium");
        let chromedriver = binary("PLUGSYNC_CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver");
        std::fs::create_dir_all(shots).unwrap_or_else(|e| panic!("create {}: {e}", shots.display()));
        let log = std::fs::File::create(shots.join("chromedriver.log")).expect("chromedriver log file");
        let port = crate::daemon::free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let profile = tempfile::tempdir().expect("browser profile dir");
        let profile_path = profile.path().to_path_buf();
        // Built before the session, so that a failed start still ends the driver.
        let mut browser = Browser { client: None, driver, rt, shots: shots.to_path_buf(), _profile: profile };
        let client = browser.rt.block_on(connect(port, &chromium, &profile_path));
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a WebDriver session")
    }

    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs `script` (a function body: `return …`) in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.rt.block_on(self.client().execute(script, Vec::new())).unwrap_or_else(|e| panic!("run {script:?}: {e}"))
    }

    /// Polls `script` every 100 ms until it returns something truthy (not null, false, 0 or
    /// ""), and returns that; panics with `what` and the page's text on timeout.
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.eval(script);
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if started.elapsed() > timeout {
                let text = self.eval("return document.body ? document.body.innerText : ''");
                panic!(
                    "timed out after {timeout:?} waiting for {what} ({script})\npage text:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, css: &str) {
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `text` into the field at `css` (what was there is cleared first).
    pub fn type_into(&self, css: &str, text: &str) {
        self.rt
            .block_on(async {
                let field = self.client().find(Locator::Css(css)).await?;
                field.clear().await?;
                field.send_keys(text).await
            })
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The text of the element at `css` ("" when there is none).
    pub fn text(&self, css: &str) -> String {
        let script = format!("const e = document.querySelector({}); return e ? e.innerText : '';", json!(css));
        self.eval(&script).as_str().unwrap_or("").to_string()
    }

    /// A full-page PNG in [`Browser::shots`] as `name.png` (the window grows to the page's
    /// height first); returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        // Measured in a small window (a page never reports less than its window), then the
        // window's outer height is the page's plus the browser's own frame.
        let script =
            "return Math.ceil(document.documentElement.scrollHeight + window.outerHeight - window.innerHeight)";
        self.rt.block_on(self.client().set_window_size(WIDTH, 600)).unwrap_or_else(|e| panic!("resize: {e}"));
        let height = self.eval(script).as_u64().unwrap_or(900);
        let height = u32::try_from(height.clamp(600, 8000)).unwrap_or(900);
        let png = self.rt.block_on(async {
            self.client().set_window_size(WIDTH, height).await?;
            tokio::time::sleep(Duration::from_millis(150)).await;
            self.client().screenshot().await
        });
        let png = png.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        eprintln!("screenshot: {}", path.display());
        path
    }
}

async fn connect(port: u16, chromium: &Path, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium.to_string_lossy(),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                format!("--window-size={WIDTH},1000"), format!("--user-data-dir={}", profile.display()),
                "--no-first-run", "--disable-extensions", "--force-device-scale-factor=1",
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut builder = ClientBuilder::new(Connector::new());
        builder.capabilities(capabilities.clone());
        match builder.connect(&url).await {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for chromedriver at {url}: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("no WebDriver session from chromedriver at {url} within 30 s: {e}"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let closed =
                self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), client.close()).await });
            if !matches!(closed, Ok(Ok(()))) {
                eprintln!("the WebDriver session did not close cleanly: {closed:?}");
            }
        }
        // The driver's own process group: chromedriver and the browser it started.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.driver.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}
