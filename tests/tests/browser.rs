//! The reviewer pages in a real browser, with hold and forward on. Headless Chromium, driven
//! over WebDriver by chromedriver, signs in through OpenID Connect with the development issuer
//! (the code flow with PKCE: the "Sign in with" button, the issuer's development page where a
//! user and groups are picked, the callback), watches a push that the real git client is making
//! through the gate appear in the queue while git waits (the queue refreshes itself), and
//! approves it: the same, still open push then goes through. Another is denied with a reason
//! that git prints; the person an agent acts for is refused when approving its push.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`cargo xtask test` installs them). Every
//! page visited is kept as a screenshot in `target/test-artifacts/browser/`.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use gitgate_integration::process::{self, ManagedProcess};
use gitgate_integration::{GitOutput, Stack, StackOptions, workspace_root};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use support::{MAIN, Reviewer, WorkTree, agent_token, assert_refused_push, new_repo, upstream_ref};
use tempfile::TempDir;
use tokio::runtime::Runtime;

/// Where Debian's packages put the browser and its WebDriver; `GITGATE_CHROMIUM` and
/// `GITGATE_CHROMEDRIVER` point elsewhere.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How to get them, for the message of a test that cannot run.
const INSTALL_HINT: &str = "install Debian's packages with `apt-get install chromium \
     chromium-driver` (as root), or run `cargo xtask test`, which installs them";

/// Screenshots of every page the tests visit, below the workspace root.
const ARTIFACTS: &str = "target/test-artifacts/browser";

/// Time a page gets to show what a step waits for; Chromium shares two cores with the stack.
const PAGE_WAIT: Duration = Duration::from_secs(30);

/// The filter's hold window in this binary's stack: a reviewer in a browser on a busy
/// machine decides well within it.
const WINDOW_MS: u64 = 90_000;

/// The browser window, a common laptop screen; screenshots grow to the page's height.
const WINDOW_WIDTH: u32 = 1280;
const WINDOW_HEIGHT: u32 = 800;

/// Time chromedriver gets to answer its status endpoint.
const DRIVER_STARTUP: Duration = Duration::from_secs(30);

#[test]
fn a_reviewer_approves_an_open_push_in_the_browser_and_the_same_push_goes_through() {
    let browser = Browser::start("approve");
    let stack = shared_stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "browser-approve");
    let agent = "agent-browser-approve";
    let token = agent_token(stack, agent);
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);

    // Sign in through the identity provider, as a reviewer would.
    browser.open(&stack.service_url("/"));
    browser.wait_for_heading("Sign in");
    browser.screenshot("sign-in");
    browser.follow_link("Sign in with the development issuer");
    browser.wait_for_heading("Development sign-in");
    browser.screenshot("dev-issuer");
    browser.fill("Sign in as this user", "User", "bob");
    browser.press("Sign in as this user");
    browser.wait_for_heading("Pending approvals");
    assert!(browser.page_text().contains("Signed in as bob"));
    browser.screenshot("queue-empty");

    std::thread::scope(|scope| {
        let old = work.head();
        let new = work.commit_file("CHANGE.md", b"A change by an agent.\n");
        let push = scope.spawn(|| {
            let started = Instant::now();
            (
                work.push(&token, &["origin", "HEAD:main"]),
                started.elapsed(),
            )
        });

        // The held push appears in the queue while git waits, without a reload.
        let row = browser.row_naming(&repo);
        for shown in [
            repo.as_str(),
            "refs/heads/main",
            agent,
            "agent",
            "alice",
            "protect main",
        ] {
            assert!(row.contains(shown), "the queue row lacks {shown:?}: {row}");
        }
        assert!(!push.is_finished(), "git is still waiting");
        browser.screenshot("queue-live");

        // The ticket: what is asked, by whom, for whom, and the commit the pack carries.
        let ticket = browser.link_in_row(&repo);
        browser.follow_link(&ticket);
        browser.wait_for_heading(&format!("Ticket {ticket}"));
        browser.reload_until_text_contains("Change CHANGE.md");
        let page = browser.page_text();
        for shown in [
            "Status: pending",
            new.as_str(),
            "Fast-forward: yes",
            "alice",
            "protect main",
        ] {
            assert!(
                page.contains(shown),
                "the ticket page lacks {shown:?}:\n{page}"
            );
        }
        browser.screenshot("ticket");

        // Approve for one hour, with a comment.
        let comment = "Reviewed in the browser: the agent's change is expected.";
        browser.fill("Approve", "Comment (optional)", comment);
        browser.choose("Approval valid for", "1 hour");
        browser.press("Approve");
        browser.wait_for_text("This ticket is approved.");
        let page = browser.page_text();
        assert!(page.contains("Status: approved"), "{page}");
        assert!(page.contains(comment), "{page}");
        browser.screenshot("approved");

        // The same push, still open, goes through.
        let (out, took) = push.join().expect("the push thread");
        println!("git finished after {took:.1?}:\n{}", out.stderr);
        assert!(out.ok(), "the held push goes through\n{}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("remote: gitgate: {ticket} approved by bob")),
            "{}",
            out.stderr
        );
        assert_eq!(upstream_ref(stack, &repo, MAIN), Some(new.clone()));
        assert_ne!(old, new);

        // The history shows the decision.
        browser.open(&stack.service_url("/history"));
        browser.wait_for_heading("Decided tickets");
        let row = browser.row_naming(&repo);
        assert!(row.contains("approved") && row.contains("bob"), "{row}");
        browser.screenshot("history");
    });
}

#[test]
fn a_reviewer_denies_an_open_push_and_git_prints_the_reason() {
    let browser = Browser::start("deny");
    let stack = shared_stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "browser-deny");
    let token = agent_token(stack, "agent-browser-deny");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let before = work.head();

    browser.sign_in_as("carol");
    std::thread::scope(|scope| {
        work.commit_file("CHANGE.md", b"Another change.\n");
        let push = scope.spawn(|| work.push(&token, &["origin", "HEAD:main"]));

        let ticket = browser.link_in_row(&repo);
        browser.follow_link(&ticket);
        browser.wait_for_heading(&format!("Ticket {ticket}"));
        let reason = "Changes to main go through a pull request";
        browser.fill("Deny", "Reason (required, shown to the pusher)", reason);
        browser.press("Deny");
        browser.wait_for_text("This ticket is denied.");
        let page = browser.page_text();
        assert!(page.contains("Status: denied"), "{page}");
        assert!(page.contains(reason), "{page}");
        browser.screenshot("denied");

        let out: GitOutput = push.join().expect("the push thread");
        println!("git printed:\n{}", out.stderr);
        assert_refused_push(&out);
        assert!(
            out.stderr.contains("gitgate:deny:reviewer-denied"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(reason), "{}", out.stderr);
        assert_eq!(upstream_ref(stack, &repo, MAIN), Some(before.clone()));
    });
}

#[test]
fn the_person_an_agent_acts_for_cannot_approve_its_push() {
    let browser = Browser::start("own-push");
    let stack = shared_stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "browser-own");
    let agent = "agent-browser-own";
    let token = agent_token(stack, agent);
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);

    browser.sign_in_as("alice");
    std::thread::scope(|scope| {
        work.commit_file("CHANGE.md", b"alice's agent's change.\n");
        let push = scope.spawn(|| work.push(&token, &["origin", "HEAD:main"]));

        // The ticket page says why alice may not decide, and offers no decision form.
        let ticket = browser.link_in_row(&repo);
        browser.follow_link(&ticket);
        browser.wait_for_heading(&format!("Ticket {ticket}"));
        let page = browser.page_text();
        let refusal =
            format!("{agent} pushed this update on your behalf; another reviewer must decide it.");
        assert!(page.contains(&refusal), "{page}");
        assert!(!browser.has_button("Approve"), "{page}");
        browser.screenshot("ticket");

        // Sending the approve form anyway, with this session's CSRF token, is refused too.
        browser.post_form(
            &format!("/tickets/{ticket}/approve"),
            &[("comment", "approving my own agent's push")],
        );
        browser.wait_for_heading("Separation of duties");
        let page = browser.page_text();
        assert!(page.contains(&refusal), "{page}");
        assert!(page.contains("HTTP status 403"), "{page}");
        browser.screenshot("refused");

        // Nothing changed; another reviewer ends the wait.
        let bob = Reviewer::sign_in(stack, "bob");
        assert_eq!(bob.ticket_status(&ticket), "pending");
        assert_eq!(bob.deny(&ticket, "cleaning up after the test").status, 303);
        let out: GitOutput = push.join().expect("the push thread");
        assert_refused_push(&out);
        assert!(
            out.stderr.contains("cleaning up after the test"),
            "{}",
            out.stderr
        );
    });
}

#[test]
fn a_reviewer_signs_in_at_the_test_identity_provider() {
    let browser = Browser::start("test-provider");
    // A stack of its own: the service's reviewers sign in at `oidc-provider`, which also
    // issues the agents' tokens. The cookie key is configured, as a provider requires.
    let config = "oidc:\n  issuer: \"{oidc_issuer}\"\n  client_id: \"{oidc_reviewer_client_id}\"\n  \
                  display_name: the test provider\n\
                  cookie_key: \"c2Vzc2lvbnMgb2YgdGhlIGJyb3dzZXIgdGVzdCBzdGFjayBhcmUgc2lnbmVkIHdpdGggdGhpcyBrZXkgb2YgNjQgYnl0ZXMhIQ==\"\n";
    let stack = Stack::start_with(StackOptions {
        service_config: Some(config.to_owned()),
        service_env: vec![(
            "GITGATE_OIDC_CLIENT_SECRET".into(),
            "{oidc_reviewer_client_secret}".into(),
        )],
        ..StackOptions::with_oidc()
    })
    .expect("a stack with the test provider");
    let _logs = stack.logs_on_failure();

    browser.open(&stack.service_url("/login"));
    browser.wait_for_heading("Sign in");
    let page = browser.page_text();
    assert!(
        !page.contains("Reviewer token"),
        "no pasted tokens with a provider:\n{page}"
    );
    browser.screenshot("sign-in");
    browser.follow_link("Sign in with the test provider");
    browser.type_into("input[name=login]", "bob");
    browser.screenshot("provider");
    browser.press("Sign in");
    browser.wait_for_heading("Pending approvals");
    assert!(browser.page_text().contains("Signed in as bob"));
    browser.screenshot("queue");
    drop(browser);
    stack.shutdown();
}

/// The stack shared by the tests of this binary, with hold and forward on, started from a
/// thread that lives as long as the process. Envoy asks the kernel for SIGTERM when the thread
/// that started it ends (`PR_SET_PDEATHSIG`), so a stack started on a test's own thread would
/// stop with that test.
fn shared_stack() -> &'static Stack {
    fn options() -> StackOptions {
        StackOptions {
            hold_window_ms: Some(WINDOW_MS),
            ..StackOptions::default()
        }
    }
    static KEEPER: OnceLock<()> = OnceLock::new();
    KEEPER.get_or_init(|| {
        let (started, wait) = mpsc::channel();
        std::thread::spawn(move || {
            Stack::shared_with(options);
            let _ = started.send(());
            loop {
                std::thread::park();
            }
        });
        wait.recv()
            .expect("the shared gitgate stack did not start; its error is printed above");
    });
    Stack::shared_with(options)
}

/// Headless Chromium under a chromedriver of its own, driven with blocking calls so a test
/// reads as the steps a reviewer takes. Dropping it ends the browser session and stops
/// chromedriver's process group, Chromium included; a test that panics first leaves a
/// screenshot of the page it was on.
struct Browser {
    /// Name of the test case, the prefix of its screenshots.
    case: String,
    runtime: Runtime,
    /// `None` once the session is closed.
    client: Option<Client>,
    /// Number of screenshots taken so far, for their file names.
    shots: std::cell::Cell<u32>,
    _profile: TempDir,
    driver: ManagedProcess,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session in a fresh Chromium profile.
    ///
    /// # Panics
    ///
    /// If Chromium or chromedriver is missing (saying how to install them), or does not start.
    fn start(case: &str) -> Browser {
        let chromium = program("GITGATE_CHROMIUM", CHROMIUM);
        let chromedriver = program("GITGATE_CHROMEDRIVER", CHROMEDRIVER);
        for path in [&chromium, &chromedriver] {
            assert!(
                path.is_file(),
                "the browser tests need {}, which is missing: {INSTALL_HINT}",
                path.display()
            );
        }
        // The screenshots and logs of this case's last run go; the other cases' stay.
        let artifacts = artifacts_dir();
        std::fs::create_dir_all(&artifacts).unwrap();
        for entry in std::fs::read_dir(&artifacts).unwrap().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{case}-"))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }

        // chromedriver on a port that was free a moment ago; its log is kept with the shots.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let log = artifacts.join(format!("{case}-chromedriver.log"));
        let _ = std::fs::remove_file(&log);
        let mut command = Command::new(&chromedriver);
        command.arg(format!("--port={port}"));
        let mut driver = ManagedProcess::spawn("chromedriver", command, &log).unwrap();
        let status = format!("http://127.0.0.1:{port}/status");
        process::wait_ready(
            "chromedriver",
            &log,
            DRIVER_STARTUP,
            || driver.check_running(),
            || {
                gitgate_integration::http::get(&status)
                    .is_ok_and(|answer| answer.status == 200 && answer.text().contains("ready"))
            },
        )
        .unwrap();

        // Headless, as root, and with nothing that reaches beyond this machine.
        let profile = tempfile::Builder::new()
            .prefix("gitgate-chromium-")
            .tempdir()
            .unwrap();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(async {
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
        });
        let client = match client {
            Ok(client) => client,
            Err(err) => panic!(
                "chromedriver did not open a Chromium session: {err}\n{}",
                process::log_tail(&log)
            ),
        };
        Browser {
            case: case.to_owned(),
            runtime,
            client: Some(client),
            shots: std::cell::Cell::new(0),
            _profile: profile,
            driver,
        }
    }

    fn client(&self) -> &Client {
        // OK because the client is only taken in drop.
        self.client.as_ref().expect("the browser session is open")
    }

    /// Navigates to `url` and waits for the page to load.
    fn open(&self, url: &str) {
        let client = self.client();
        self.runtime
            .block_on(client.goto(url))
            .unwrap_or_else(|err| panic!("cannot open {url}: {err}"));
    }

    /// Waits until the page's `h1` reads `heading`.
    fn wait_for_heading(&self, heading: &str) {
        self.wait_for(&format!("//h1[normalize-space()={}]", literal(heading)));
    }

    /// Waits until an element of the page reads exactly `text`.
    fn wait_for_text(&self, text: &str) {
        self.wait_for(&format!("//*[normalize-space()={}]", literal(text)));
    }

    fn wait_for(&self, xpath: &str) -> Element {
        let client = self.client();
        let found = self.runtime.block_on(
            client
                .wait()
                .at_most(PAGE_WAIT)
                .for_element(Locator::XPath(xpath)),
        );
        match found {
            Ok(element) => element,
            Err(err) => panic!(
                "the page never showed {xpath} ({err}); it reads:\n{}",
                self.page_text()
            ),
        }
    }

    /// The visible text of the page.
    fn page_text(&self) -> String {
        let client = self.client();
        self.runtime
            .block_on(async { client.find(Locator::Css("body")).await?.text().await })
            .unwrap_or_else(|err| format!("(the page text cannot be read: {err})"))
    }

    /// Types `text` into the field labelled `label` of the form submitted by the button
    /// `form_button`: the label's `for` names the field, as for a person using a screen reader.
    fn fill(&self, form_button: &str, label: &str, text: &str) {
        let label_xpath = format!(
            "//form[.//button[normalize-space()={}]]//label[normalize-space()={}]",
            literal(form_button),
            literal(label)
        );
        let label_element = self.wait_for(&label_xpath);
        let client = self.client();
        self.runtime
            .block_on(async {
                let field_id = label_element
                    .attr("for")
                    .await?
                    .unwrap_or_else(|| panic!("the label {label:?} names no field"));
                let field = client.find(Locator::Id(&field_id)).await?;
                field.send_keys(text).await
            })
            .unwrap_or_else(|err| panic!("cannot type into {label:?}: {err}"));
    }

    /// Clicks the button that reads `text`.
    fn press(&self, text: &str) {
        let button = self.wait_for(&format!("//button[normalize-space()={}]", literal(text)));
        self.runtime
            .block_on(button.click())
            .unwrap_or_else(|err| panic!("cannot press {text:?}: {err}"));
    }

    /// Whether the page has a button that reads `text`.
    fn has_button(&self, text: &str) -> bool {
        let xpath = format!("//button[normalize-space()={}]", literal(text));
        let client = self.client();
        self.runtime
            .block_on(client.find_all(Locator::XPath(&xpath)))
            .map(|found| !found.is_empty())
            .unwrap_or_else(|err| panic!("cannot look for the button {text:?}: {err}"))
    }

    /// The text of the table row that has a cell reading exactly `cell`.
    fn row_naming(&self, cell: &str) -> String {
        let row = self.wait_for(&format!("//tr[td[normalize-space()={}]]", literal(cell)));
        self.runtime
            .block_on(row.text())
            .unwrap_or_else(|err| panic!("cannot read the row of {cell:?}: {err}"))
    }

    /// Submits a POST form to `action` that the page does not offer, carrying the session's
    /// CSRF token from the page's sign-out form and `fields`: what a hand-made request would
    /// send.
    fn post_form(&self, action: &str, fields: &[(&str, &str)]) {
        let script = "
            const [action, fields] = arguments;
            const csrf = document.querySelector('form[action=\"/logout\"] input[name=csrf]');
            const form = document.createElement('form');
            form.method = 'post';
            form.action = action;
            for (const [name, value] of [['csrf', csrf.value], ...fields]) {
                const input = document.createElement('input');
                input.type = 'hidden';
                input.name = name;
                input.value = value;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        ";
        let client = self.client();
        self.runtime
            .block_on(client.execute(script, vec![json!(action), json!(fields)]))
            .unwrap_or_else(|err| panic!("cannot post to {action}: {err}"));
    }

    /// Signs in as `user` (group reviewers, role reviewer) through the development issuer,
    /// from the sign-in page to the queue.
    fn sign_in_as(&self, user: &str) {
        self.open(&format!("{}/login", self.base_url()));
        self.wait_for_heading("Sign in");
        self.follow_link("Sign in with the development issuer");
        self.wait_for_heading("Development sign-in");
        self.fill("Sign in as this user", "User", user);
        self.press("Sign in as this user");
        self.wait_for_heading("Pending approvals");
        assert!(self.page_text().contains(&format!("Signed in as {user}")));
    }

    /// The service's URL, from the shared stack.
    fn base_url(&self) -> String {
        shared_stack()
            .service_url("")
            .trim_end_matches('/')
            .to_owned()
    }

    /// Follows the link that reads `text`.
    fn follow_link(&self, text: &str) {
        let link = self.wait_for(&format!("//a[normalize-space()={}]", literal(text)));
        self.runtime
            .block_on(link.click())
            .unwrap_or_else(|err| panic!("cannot follow {text:?}: {err}"));
    }

    /// The text of the first link in the table row that has a cell reading exactly `cell`.
    fn link_in_row(&self, cell: &str) -> String {
        let link = self.wait_for(&format!("//tr[td[normalize-space()={}]]//a", literal(cell)));
        self.runtime
            .block_on(link.text())
            .unwrap_or_else(|err| panic!("cannot read the link of {cell:?}: {err}"))
    }

    /// Types `text` into the first field that `css` selects (a page without labelled fields).
    fn type_into(&self, css: &str, text: &str) {
        let field = self.wait_for_css(css);
        self.runtime
            .block_on(field.send_keys(text))
            .unwrap_or_else(|err| panic!("cannot type into {css}: {err}"));
    }

    fn wait_for_css(&self, css: &str) -> Element {
        let client = self.client();
        let found = self.runtime.block_on(
            client
                .wait()
                .at_most(PAGE_WAIT)
                .for_element(Locator::Css(css)),
        );
        found.unwrap_or_else(|err| {
            panic!("the page never showed {css} ({err}):\n{}", self.page_text())
        })
    }

    /// Picks the option reading `option` in the select labelled `label`.
    fn choose(&self, label: &str, option: &str) {
        let label_element =
            self.wait_for(&format!("//label[normalize-space()={}]", literal(label)));
        let client = self.client();
        self.runtime
            .block_on(async {
                let id = label_element
                    .attr("for")
                    .await?
                    .unwrap_or_else(|| panic!("the label {label:?} names no field"));
                let select = client.find(Locator::Id(&id)).await?;
                select.select_by_label(option).await
            })
            .unwrap_or_else(|err| panic!("cannot choose {option:?} in {label:?}: {err}"));
    }

    /// Reloads the page until its text contains `text` (data another request writes).
    fn reload_until_text_contains(&self, text: &str) {
        let deadline = Instant::now() + PAGE_WAIT;
        while !self.page_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the page never showed {text:?}:\n{}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(500));
            self.runtime
                .block_on(self.client().refresh())
                .unwrap_or_else(|err| panic!("cannot reload: {err}"));
        }
    }

    /// Saves a screenshot of the page as `<case>-<n>-<name>.png` in the artifacts directory.
    fn screenshot(&self, name: &str) {
        let n = self.shots.get() + 1;
        self.shots.set(n);
        let path = artifacts_dir().join(format!("{}-{n}-{name}.png", self.case));
        let client = self.client();
        // The window grows to the page's height for the shot, so the whole page is on it.
        let png = self
            .runtime
            .block_on(async {
                let height = client
                    .execute("return document.documentElement.scrollHeight;", vec![])
                    .await?
                    .as_u64()
                    .and_then(|h| u32::try_from(h).ok())
                    .unwrap_or(WINDOW_HEIGHT);
                client
                    .set_window_size(WINDOW_WIDTH, height.clamp(WINDOW_HEIGHT, 4 * WINDOW_HEIGHT))
                    .await?;
                let png = client.screenshot().await;
                client.set_window_size(WINDOW_WIDTH, WINDOW_HEIGHT).await?;
                png
            })
            .unwrap_or_else(|err| panic!("cannot take the screenshot {name}: {err}"));
        std::fs::write(&path, png).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let failed = std::thread::panicking();
        let path = artifacts_dir().join(format!("{}-failure.png", self.case));
        self.runtime.block_on(async {
            if failed {
                if let Ok(url) = client.current_url().await {
                    eprintln!("the browser was on {url}; screenshot: {}", path.display());
                }
                if let Ok(png) = client.screenshot().await {
                    let _ = std::fs::write(&path, png);
                }
            }
            // Ends Chromium; chromedriver's group is stopped after this in any case.
            let _ = client.close().await;
        });
        if failed {
            eprintln!(
                "----- chromedriver -----\n{}",
                process::log_tail(self.driver.log_path())
            );
        }
        self.driver.stop();
    }
}

fn artifacts_dir() -> PathBuf {
    workspace_root().join(ARTIFACTS)
}

/// `default`, unless the environment variable `var` names another path.
fn program(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(default).to_owned())
}

/// `text` as an XPath string literal. The texts of these tests have no single quote.
fn literal(text: &str) -> String {
    assert!(!text.contains('\''), "no XPath literal for {text:?}");
    format!("'{text}'")
}
