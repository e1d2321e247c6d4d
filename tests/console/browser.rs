//! Headless Chromium under chromedriver, for one test: chromedriver on a free loopback port,
//! a fantoccini client over plain HTTP, and helpers to sign in and take screenshots.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::{PASSWORD, TestApp};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's `/usr/bin/chromium` is a wrapper script; chromedriver wants the binary.
const CHROMIUM: [&str; 2] = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"];

/// A browser session; [`Browser::close`] ends it, dropping it stops chromedriver.
pub struct Browser {
    pub client: Client,
    base: String,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A browser for `app`'s console, or `None` (with the reason printed) without Chromium.
pub async fn open(app: &TestApp) -> Option<Browser> {
    let Some(chromium) = CHROMIUM.iter().find(|p| std::path::Path::new(p).exists()) else {
        eprintln!("skipped: Chromium is not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        eprintln!("skipped: chromedriver is not installed (apt-get install chromium-driver)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,800"],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let mut last_error = None;
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => {
                return Some(Browser {
                    client,
                    base: app.http.clone(),
                    driver,
                });
            }
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer: {last_error:?}");
}

impl Browser {
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Waits until the `<h1>` reads `title` (after a form's navigation).
    pub async fn wait_for_heading(&self, title: &str) {
        let xpath = format!("//h1[normalize-space()='{title}']");
        if let Err(e) = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(&xpath))
            .await
        {
            let source = self.client.source().await.unwrap_or_default();
            panic!("no page titled {title:?} ({e}); page:\n{source}");
        }
    }

    /// Waits for an element matching `xpath` (after a navigation that keeps the heading).
    pub async fn wait_xpath(&self, xpath: &str) {
        if let Err(e) = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(xpath))
            .await
        {
            let source = self.client.source().await.unwrap_or_default();
            panic!("nothing matches {xpath} ({e}); page:\n{source}");
        }
    }

    /// Waits for a notice (done or error) containing `text`.
    pub async fn wait_notice(&self, text: &str) {
        self.wait_xpath(&format!(
            "//*[contains(@class,'notice') and contains(normalize-space(), '{text}')]"
        ))
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Signs in through the login form as `username`.
    pub async fn sign_in(&self, username: &str) {
        self.goto("/admin/").await;
        self.wait_for_heading("Sign in").await;
        self.fill("#username", username).await;
        self.fill("#password", PASSWORD).await;
        self.click("form[action='/admin/login'] button[type=submit]")
            .await;
    }

    /// Saves a screenshot as `target/console-screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    pub async fn close(self) {
        self.client.clone().close().await.unwrap();
    }
}
