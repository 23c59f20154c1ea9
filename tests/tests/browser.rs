//! The reviewer pages in a real browser. Headless Chromium, driven over WebDriver by
//! chromedriver, signs in by pasting a reviewer token into the sign-in form, finds the push
//! that the real git client made through the gate in the queue, and approves or denies it;
//! git's re-push then shows the decision. The person an agent acts for is refused.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`cargo xtask test` installs them). Every
//! page visited is kept as a screenshot in `target/test-artifacts/browser/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use gitgate_integration::process::{self, ManagedProcess};
use gitgate_integration::{RepoOptions, Stack, TokenOptions, workspace_root};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
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

/// The browser window, a common laptop screen; screenshots grow to the page's height.
const WINDOW_WIDTH: u32 = 1280;
const WINDOW_HEIGHT: u32 = 800;

/// Time chromedriver gets to answer its status endpoint.
const DRIVER_STARTUP: Duration = Duration::from_secs(30);

#[test]
fn a_reviewer_approves_a_held_push_in_the_browser_and_the_re_push_goes_through() {
    let browser = Browser::start("approve");
    let stack = shared_stack();
    let _logs = stack.logs_on_failure();
    let push = HeldPush::make(stack, "browser-approve", "agent-browser-approve");
    let bob = stack.token("bob", &TokenOptions::reviewer()).unwrap();

    // Sign in through the form, as a reviewer would: paste the token into the labelled field.
    browser.open(&stack.service_url("/"));
    browser.wait_for_heading("Sign in");
    browser.screenshot("sign-in");
    browser.fill("Sign in", "Reviewer token", &bob);
    browser.press("Sign in");

    // The queue lists the held update with its repository, ref and requester.
    browser.wait_for_heading("Pending approvals");
    assert!(browser.page_text().contains("Signed in as bob"));
    let row = browser.row_naming(&push.repo);
    for shown in [
        push.repo.as_str(),
        "refs/heads/main",
        push.agent.as_str(),
        "agent",
        "alice",
    ] {
        assert!(row.contains(shown), "the queue row lacks {shown:?}: {row}");
    }
    browser.screenshot("queue");

    // The ticket, reached from the queue.
    browser.follow_link_in_row(&push.repo, &push.ticket);
    browser.wait_for_heading(&format!("Ticket {}", push.ticket));
    let page = browser.page_text();
    assert!(page.contains("Status: pending"), "{page}");
    assert!(page.contains(&push.new_id), "{page}");
    browser.screenshot("ticket");

    // Approve with a comment.
    let comment = "Reviewed in the browser: the agent's change is expected.";
    browser.fill("Approve", "Comment (optional)", comment);
    browser.press("Approve");
    browser.wait_for_text("This ticket is approved.");
    let page = browser.page_text();
    assert!(page.contains("Status: approved"), "{page}");
    assert!(page.contains(comment), "{page}");
    assert!(page.contains("bob"), "{page}");
    browser.screenshot("approved");

    // The history shows the decision too.
    browser.open(&stack.service_url("/history"));
    browser.wait_for_heading("Decided tickets");
    let row = browser.row_naming(&push.repo);
    assert!(row.contains("approved") && row.contains("bob"), "{row}");
    browser.screenshot("history");

    // The very same push now goes through and moves the upstream's main.
    let pushed = push.push_again(stack).success().unwrap();
    assert!(pushed.stderr.contains("HEAD -> main"), "{}", pushed.stderr);
    assert_eq!(
        stack.upstream_ref(&push.repo, "refs/heads/main").unwrap(),
        Some(push.new_id.clone())
    );
}

#[test]
fn a_reviewer_denies_a_held_push_and_git_prints_the_reason() {
    let browser = Browser::start("deny");
    let stack = shared_stack();
    let _logs = stack.logs_on_failure();
    let push = HeldPush::make(stack, "browser-deny", "agent-browser-deny");
    let carol = stack.token("carol", &TokenOptions::reviewer()).unwrap();
    let before = stack
        .upstream_ref(&push.repo, "refs/heads/main")
        .unwrap()
        .unwrap();

    browser.open(&push.url);
    browser.wait_for_heading("Sign in");
    browser.fill("Sign in", "Reviewer token", &carol);
    browser.press("Sign in");

    // Sign-in returns to the ticket that was asked for.
    browser.wait_for_heading(&format!("Ticket {}", push.ticket));
    browser.screenshot("ticket");
    let reason = "Changes to main go through a pull request";
    browser.fill("Deny", "Reason (required, shown to the pusher)", reason);
    browser.press("Deny");
    browser.wait_for_text("This ticket is denied.");
    let page = browser.page_text();
    assert!(page.contains("Status: denied"), "{page}");
    assert!(page.contains(reason), "{page}");
    browser.screenshot("denied");

    let refused = push.push_again(stack).failure().unwrap();
    assert!(
        refused.stderr.contains("gitgate:deny:reviewer-denied"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains(reason), "{}", refused.stderr);
    assert_eq!(
        stack.upstream_ref(&push.repo, "refs/heads/main").unwrap(),
        Some(before)
    );
}

#[test]
fn the_person_an_agent_acts_for_cannot_approve_its_push() {
    let browser = Browser::start("own-push");
    let stack = shared_stack();
    let _logs = stack.logs_on_failure();
    let push = HeldPush::make(stack, "browser-own", "agent-browser-own");
    let alice = stack.token("alice", &TokenOptions::reviewer()).unwrap();

    browser.open(&stack.service_url("/login"));
    browser.wait_for_heading("Sign in");
    browser.fill("Sign in", "Reviewer token", &alice);
    browser.press("Sign in");
    browser.wait_for_heading("Pending approvals");

    // The ticket page says why alice may not decide, and offers no decision form.
    browser.open(&push.url);
    browser.wait_for_heading(&format!("Ticket {}", push.ticket));
    let page = browser.page_text();
    let refusal = format!(
        "{} pushed this update on your behalf; another reviewer must decide it.",
        push.agent
    );
    assert!(page.contains(&refusal), "{page}");
    assert!(!browser.has_button("Approve"), "{page}");
    browser.screenshot("ticket");

    // Sending the approve form anyway, with this session's CSRF token, is refused too.
    browser.post_form(
        &format!("/tickets/{}/approve", push.ticket),
        &[("comment", "approving my own agent's push")],
    );
    browser.wait_for_heading("Separation of duties");
    let page = browser.page_text();
    assert!(page.contains(&refusal), "{page}");
    assert!(page.contains("HTTP status 403"), "{page}");
    browser.screenshot("refused");

    // Nothing changed: the ticket is pending and git is still held on the same ticket.
    browser.open(&push.url);
    browser.wait_for_heading(&format!("Ticket {}", push.ticket));
    assert!(browser.page_text().contains("Status: pending"));
    let held = push.push_again(stack).failure().unwrap();
    assert!(held.stderr.contains("gitgate:hold:"), "{}", held.stderr);
    assert!(held.stderr.contains(&push.ticket), "{}", held.stderr);
}

/// The stack shared by the tests of this binary, started from a thread that lives as long as
/// the process. Envoy asks the kernel for SIGTERM when the thread that started it ends
/// (`PR_SET_PDEATHSIG`), so a stack started on a test's own thread would stop with that test.
fn shared_stack() -> &'static Stack {
    static KEEPER: OnceLock<()> = OnceLock::new();
    KEEPER.get_or_init(|| {
        let (started, wait) = mpsc::channel();
        std::thread::spawn(move || {
            Stack::shared();
            let _ = started.send(());
            loop {
                std::thread::park();
            }
        });
        wait.recv()
            .expect("the shared gitgate stack did not start; its error is printed above");
    });
    Stack::shared()
}

/// A push to a protected `main` that the gate held, made by an agent acting for alice.
struct HeldPush {
    /// The upstream repository, unique to the test.
    repo: String,
    /// The agent's subject.
    agent: String,
    /// The agent's token.
    token: String,
    /// Holds the clone the push was made from.
    _scratch: TempDir,
    /// The clone.
    clone: PathBuf,
    /// The commit pushed.
    new_id: String,
    /// The ticket id, from git's output.
    ticket: String,
    /// Where the ticket can be approved, from git's output.
    url: String,
}

impl HeldPush {
    fn make(stack: &Stack, repo_prefix: &str, agent: &str) -> HeldPush {
        let repo = stack.unique_repo_name(repo_prefix);
        stack.create_repo(&repo, RepoOptions::default()).unwrap();
        let token = stack
            .token(agent, &TokenOptions::agent_for("alice"))
            .unwrap();
        let scratch = stack.temp_dir().unwrap();
        let clone = scratch.path().join("clone");
        stack
            .git()
            .arg("clone")
            .arg(stack.gateway_url(&repo))
            .arg(&clone)
            .bearer(&token)
            .success()
            .unwrap();
        std::fs::write(clone.join("CHANGE.md"), format!("A change by {agent}.\n")).unwrap();
        stack
            .git()
            .current_dir(&clone)
            .args(["add", "CHANGE.md"])
            .success()
            .unwrap();
        stack
            .git()
            .current_dir(&clone)
            .args(["commit", "-q", "-m", "Change made by an agent"])
            .success()
            .unwrap();
        let new_id = stack
            .git()
            .current_dir(&clone)
            .args(["rev-parse", "HEAD"])
            .success()
            .unwrap()
            .trimmed()
            .to_owned();

        let mut push = HeldPush {
            repo,
            agent: agent.to_owned(),
            token,
            _scratch: scratch,
            clone,
            new_id,
            ticket: String::new(),
            url: String::new(),
        };
        let held = push.push_again(stack).failure().unwrap();
        assert!(
            held.stderr.contains("gitgate:hold:protected-ref"),
            "{}",
            held.stderr
        );
        push.url = approval_url(&held.stderr);
        push.ticket = push.url.rsplit('/').next().unwrap_or_default().to_owned();
        assert!(!push.ticket.is_empty(), "{}", held.stderr);
        push
    }

    /// `git push origin HEAD:main` from the clone, with the agent's token.
    fn push_again(&self, stack: &Stack) -> gitgate_integration::Git {
        stack
            .git()
            .current_dir(&self.clone)
            .args(["push", "origin", "HEAD:main"])
            .bearer(&self.token)
    }
}

/// The ticket URL in git's `remote: gitgate: ... is held for review, approve at <url>` line.
fn approval_url(stderr: &str) -> String {
    let marker = "approve at ";
    let Some(start) = stderr.find(marker) else {
        panic!("git's output names no approval page:\n{stderr}");
    };
    stderr[start + marker.len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
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

    /// Follows the link reading `link` in the table row that has a cell reading `cell`.
    fn follow_link_in_row(&self, cell: &str, link: &str) {
        let xpath = format!(
            "//tr[td[normalize-space()={}]]//a[normalize-space()={}]",
            literal(cell),
            literal(link)
        );
        let link_element = self.wait_for(&xpath);
        self.runtime
            .block_on(link_element.click())
            .unwrap_or_else(|err| panic!("cannot follow {link:?}: {err}"));
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
