//! The agent panel (`web/`, served by `--web`) in a real browser: headless Debian Chromium,
//! driven by `tests/browser/drive.mjs` (npm `playwright-core`, no browser download), against
//! the real server on a real database, through a TCP proxy the test can cut. The panel is found
//! the way a user finds it: buttons by name, fields by label, text by what it says.
//!
//! Without Chromium (`/usr/bin/chromium`, or `CLIENT_INFO_CHROMIUM`) or Node.js the browser
//! test says so on stderr and passes; `.ci/install-tools` installs both.
//! Screenshots go to `target/browser-screenshots/`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use client_info_sdk::contacts::messaging;
use client_info_sdk::interactions::chat;
use client_info_sdk::pb;
use client_info_server::domain::permission::Permission;
use client_info_server::web::WebPanel;
use client_info_tests::{ALL, TcpProxy, TestApp, http1};
use serde_json::{Value, json};

const AGENT: &[Permission] = &[Permission::InteractionsHandle, Permission::ContactsRead];
/// The longest any one browser command may take (each also has its own, shorter, timeout).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(40);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Node.js, or why not.
fn node() -> Result<(), String> {
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err("Node.js (node) not found".into()),
    }
}

/// Chromium and the driver's npm packages, or why the browser test cannot run here.
fn browser_setup() -> Result<(PathBuf, PathBuf), String> {
    node()?;
    let chromium = std::env::var_os("CLIENT_INFO_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "Chromium not found at {} (apt-get install chromium, or bash .ci/install-tools)",
            chromium.display()
        ));
    }
    let dir = repo().join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !status.success() {
            return Err(format!("npm ci in {} failed", dir.display()));
        }
    }
    Ok((chromium, dir.join("drive.mjs")))
}

/// The browser under remote control: one JSON command per line, one answer per line.
struct Browser {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    answers: tokio::sync::mpsc::UnboundedReceiver<Value>,
    shots: PathBuf,
    failures: usize,
}

impl Browser {
    async fn start(chromium: &Path, script: &Path, shots: &Path) -> Browser {
        let mut child = std::process::Command::new("node")
            .arg(script)
            .arg("--chromium")
            .arg(chromium)
            .arg("--shots")
            .arg(shots)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the browser driver");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, answers) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        let _ = tx.send(v);
                    }
                    Err(_) => eprintln!("browser driver: {line}"),
                }
            }
        });
        let mut browser = Browser {
            child,
            stdin,
            answers,
            shots: shots.to_owned(),
            failures: 0,
        };
        let ready = browser.answer().await;
        assert_eq!(ready["value"], "ready", "{ready}");
        browser
    }

    async fn answer(&mut self) -> Value {
        tokio::time::timeout(COMMAND_TIMEOUT, self.answers.recv())
            .await
            .unwrap_or_else(|_| panic!("the browser driver did not answer in {COMMAND_TIMEOUT:?}"))
            .expect("the browser driver ended")
    }

    /// Sends one command; on failure saves a screenshot and panics with the driver's error.
    async fn run(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").expect("write to the browser driver");
        let answer = self.answer().await;
        if answer["ok"] != true {
            self.failures += 1;
            let shot = json!({"op": "shot", "name": format!("failed-{}", self.failures)});
            writeln!(self.stdin, "{shot}").expect("write");
            let _ = self.answer().await;
            panic!(
                "browser: {command}\nfailed: {}\n(screenshot in {})",
                answer["error"].as_str().unwrap_or_default(),
                self.shots.display()
            );
        }
        answer["value"].clone()
    }

    async fn goto(&mut self, page: &str, url: &str) {
        self.run(json!({"op": "goto", "page": page, "url": url}))
            .await;
    }

    async fn fill(&mut self, page: &str, within: &str, label: &str, value: &str) {
        self.run(
            json!({"op": "fill", "page": page, "within": within, "label": label, "value": value}),
        )
        .await;
    }

    async fn click(&mut self, page: &str, within: &str, name: &str) {
        self.run(json!({"op": "click", "page": page, "within": within, "name": name}))
            .await;
    }

    async fn click_tab(&mut self, page: &str, within: &str, name: &str) {
        self.run(
            json!({"op": "click", "page": page, "within": within, "role": "tab", "name": name}),
        )
        .await;
    }

    async fn see(&mut self, page: &str, within: &str, text: &str) {
        self.run(json!({"op": "waitText", "page": page, "within": within, "text": text}))
            .await;
    }

    async fn gone(&mut self, page: &str, within: &str, text: &str) {
        self.run(json!({"op": "waitGone", "page": page, "within": within, "text": text}))
            .await;
    }

    async fn enabled(&mut self, page: &str, within: &str, name: &str, enabled: bool) {
        self.run(json!({"op": "waitEnabled", "page": page, "within": within, "name": name, "enabled": enabled}))
            .await;
    }

    async fn shot(&mut self, page: &str, name: &str) {
        self.run(json!({"op": "shot", "page": page, "name": name}))
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn article(interaction: &str) -> String {
    format!("article[data-interaction=\"{interaction}\"]")
}

#[tokio::test]
async fn the_agent_panel_works_in_a_real_browser() {
    let (chromium, script) = match browser_setup() {
        Ok(found) => found,
        Err(why) => {
            eprintln!("SKIPPED the_agent_panel_works_in_a_real_browser: {why}");
            return;
        }
    };
    let started = Instant::now();
    let app = TestApp::start_with(|c| c.web = WebPanel::SamePort).await;
    // The browser reaches the server through a proxy the test cuts to lose the connection.
    let proxy = TcpProxy::start(app.addr()).await;
    let page_url = format!("http://127.0.0.1:{}/", proxy.port);
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let alice = app.actor(d, "Alice Martin", AGENT).await;
    let bob = app
        .actor(d, "Bob Nowak", &[Permission::InteractionsHandle])
        .await;
    let ann = crm
        .client
        .new_contact("Ann Lee")
        .phone("07400 123456")
        .email("ann@example.com")
        .label("VIP")
        .attribute("tier", "gold")
        .description("Prefers calls after 18:00")
        .time_zone("Europe/London")
        .await
        .expect("Ann");
    for name in ["Ben Carter", "Bea Carter"] {
        crm.client
            .new_contact(name)
            .phone("+44 7400 555000")
            .await
            .expect("a contact sharing a number");
    }
    let dora = crm
        .client
        .new_contact("Dora Chat")
        .messaging("telegram", "tg-777", "Dora")
        .await
        .expect("Dora")
        .contact;
    let eve = crm.client.new_contact("Eve Stone").await.expect("Eve");

    let shots = repo()
        .canonicalize()
        .expect("the repository")
        .join("target/browser-screenshots");
    let mut b = Browser::start(&chromium, &script, &shots).await;
    let main = "main";

    // Sign in with a pasted token: the session stream opens, nothing is offered yet.
    b.goto(main, &page_url).await;
    b.fill(
        main,
        "#sign-in",
        "Token",
        &format!("export ALICE_TOKEN='{}'", alice.token),
    )
    .await;
    b.click(main, "#sign-in", "Sign in").await;
    b.see(main, "header", "Live").await;
    b.see(main, "#session", "No open interactions").await;

    // An offer appears, identified: queue, contact card, why it matched, member description,
    // call variables in order. Select waits for the accept.
    routing
        .client
        .offer_call("call-1", "+44 7400 123456", alice.user.0)
        .queue("q1", "Support")
        .member("m1", "Callback requested on the web site")
        .variable("lang", "en")
        .variable("order", "A-1234")
        .await
        .expect("offer call-1");
    let one = article("call-1");
    b.see(main, &one, "Support").await;
    b.see(main, &one, "Ann Lee").await;
    b.see(main, &one, "same number (E.164), exact").await;
    b.see(main, &one, "Prefers calls after 18:00").await;
    b.see(main, &one, "Callback requested on the web site")
        .await;
    let variables = b
        .run(json!({"op": "text", "page": main, "selector": format!("{one} dl.variables")}))
        .await;
    assert_eq!(
        variables
            .as_str()
            .map(|t| t.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["lang", "en", "order", "A-1234"]),
        "variables in order"
    );
    b.enabled(main, &one, "Select", false).await;
    b.enabled(main, &one, "Search", false).await;
    routing
        .client
        .accept_interaction("call-1", alice.user.0)
        .await
        .expect("accept call-1");
    b.see(main, &one, "Accepted").await;
    b.enabled(main, &one, "Select", true).await;
    b.enabled(main, &one, "Add", true).await;
    b.enabled(main, &one, "Search", true).await;
    // The communication tabs and a block collapsed and expanded again.
    b.click_tab(main, &one, "E-mails (1)").await;
    b.see(main, &one, "ann@example.com").await;
    b.click_tab(main, &one, "Phones (1)").await;
    b.click(main, &one, "Member description").await;
    b.gone(main, &one, "Callback requested on the web site")
        .await;
    b.click(main, &one, "Member description").await;
    b.see(main, &one, "Callback requested on the web site")
        .await;
    b.shot(main, "identified").await;

    // Select binds; Unbind is enabled then.
    b.click(main, &one, "Select").await;
    b.see(main, &one, "Bound contact").await;
    b.enabled(main, &one, "Unbind", true).await;
    let panel = alice
        .client
        .get_client_info("call-1")
        .await
        .expect("panel of call-1");
    assert_eq!(
        panel.bound_contact.as_ref().and_then(view_id),
        Some(ann.contact.id),
        "bound to Ann"
    );
    routing
        .client
        .close_interaction("call-1")
        .await
        .expect("close call-1");
    b.run(json!({"op": "waitSelector", "page": main, "selector": one, "state": "detached"}))
        .await;

    // A second offer of a shared number: two candidates, one at a time, with Next.
    routing
        .client
        .offer_call("call-2", "+44 7400 555000", alice.user.0)
        .queue("q2", "Sales")
        .await
        .expect("offer call-2");
    let two = article("call-2");
    b.see(main, &two, "Contact 1 of 2").await;
    let first = b
        .run(json!({"op": "text", "page": main, "selector": format!("{two} .contact-name")}))
        .await;
    b.click(main, &two, "Next").await;
    b.see(main, &two, "Contact 2 of 2").await;
    // The panel is drawn again on every change; the keyboard focus stays on Next.
    let focused = b.run(json!({"op": "focused", "page": main})).await;
    assert_eq!(focused["text"], "Next", "{focused}");
    let second = b
        .run(json!({"op": "text", "page": main, "selector": format!("{two} .contact-name")}))
        .await;
    let mut names = [first, second].map(|v| v.as_str().unwrap_or_default().to_owned());
    names.sort();
    assert_eq!(names, ["Bea Carter", "Ben Carter"]);
    routing
        .client
        .accept_interaction("call-2", alice.user.0)
        .await
        .expect("accept call-2");
    b.enabled(main, &two, "Select", true).await;
    b.shot(main, "candidates").await;
    routing
        .client
        .close_interaction("call-2")
        .await
        .expect("close call-2");

    // Nobody found: after the accept, Search finds by name (one by one), Add creates the
    // contact and binds the call.
    routing
        .client
        .offer_call("call-3", "+44 7400 999111", alice.user.0)
        .await
        .expect("offer call-3");
    let three = article("call-3");
    b.see(main, &three, "No contact found").await;
    b.enabled(main, &three, "Add", false).await;
    routing
        .client
        .accept_interaction("call-3", alice.user.0)
        .await
        .expect("accept call-3");
    b.enabled(main, &three, "Search", true).await;
    b.click(main, &three, "Search").await;
    let search = format!("{three} form[aria-label=\"Search contacts\"]");
    b.fill(main, &search, "Name", "carter").await;
    b.click(main, &search, "Search").await;
    b.see(main, &three, "Result 1 of 2").await;
    b.see(main, &three, "Name contains").await;
    b.click(main, &format!("{three} .results"), "Next").await;
    b.see(main, &three, "Result 2 of 2").await;
    b.click(main, &search, "Back").await;
    b.click(main, &three, "Add").await;
    let add = format!("{three} form[aria-label=\"Add a contact\"]");
    b.fill(main, &add, "Name", "Carl New").await;
    // A refused request shows the server's message, and the form stays for a correction.
    b.fill(main, &add, "Time zone", "Mars/Olympus").await;
    b.click(main, &add, "Add").await;
    b.see(main, &three, "Invalid input").await;
    b.see(main, &three, "time_zone").await;
    b.fill(main, &add, "Time zone", "Europe/Paris").await;
    b.fill(main, &add, "Labels", "New, Callback").await;
    b.fill(main, &add, "Description", "Asked about a delivery")
        .await;
    b.click(main, &add, "Add").await;
    b.see(main, &three, "Bound contact").await;
    b.see(main, &three, "Carl New").await;
    b.see(main, &three, "Asked about a delivery").await;
    let panel = alice
        .client
        .get_client_info("call-3")
        .await
        .expect("panel of call-3");
    match panel.bound_contact.and_then(|v| v.view) {
        Some(pb::contact_view::View::Contact(c)) => {
            assert_eq!(c.display_name, "Carl New");
            assert_eq!(c.time_zone, "Europe/Paris");
            assert_eq!(c.labels, ["Callback", "New"]);
            assert_eq!(c.owner.map(|o| o.id), Some(alice.user.0));
        }
        other => panic!("call-3 should be bound to the new contact, got {other:?}"),
    }

    // A chat identified by its messaging identity; another user's relink in the CRM moves the
    // identity away, and the panel shows it without a reload.
    routing
        .client
        .offer_interaction(chat("chat-1", "telegram", "tg-777", "Dora", alice.user.0))
        .await
        .expect("offer chat-1");
    let four = article("chat-1");
    b.see(main, &four, "Chat with Dora (telegram)").await;
    b.see(main, &four, "same messaging identity").await;
    b.click_tab(main, &four, "Messaging (1)").await;
    b.see(main, &four, "telegram: tg-777").await;
    crm.client
        .link_communication(eve.contact.id, messaging("telegram", "tg-777", "Dora"))
        .relink()
        .await
        .expect("relink to Eve");
    b.see(
        main,
        &four,
        &format!(
            "telegram: tg-777 moved from Dora Chat to contact #{}",
            eve.contact.id
        ),
    )
    .await;
    b.see(main, &four, "Messaging (0)").await;
    b.see(main, &four, "Dora Chat").await;
    assert!(
        alice
            .client
            .get_client_info("chat-1")
            .await
            .expect("panel of chat-1")
            .candidates
            .iter()
            .any(|c| c.contact.as_ref().and_then(view_id) == Some(dora.id)),
        "Dora stays the chat's candidate"
    );

    // A lost connection: a banner, then the stream resumes after the last sequence and
    // delivers what happened meanwhile.
    // A notice that only the replayed event gives (a new snapshot would not) proves the resume.
    proxy.cut();
    b.see(main, "body", "Connection lost").await;
    routing
        .client
        .offer_call("call-4", "+44 7400 123456", alice.user.0)
        .queue("q1", "Support")
        .await
        .expect("offer call-4 while the browser is cut off");
    crm.client
        .link_communication(dora.id, messaging("telegram", "tg-777", "Dora"))
        .relink()
        .await
        .expect("relink back to Dora while the browser is cut off");
    proxy.restore();
    b.see(main, &article("call-4"), "Ann Lee").await;
    // Ann called before (call-1, bound to her and closed): the Recent history block says so.
    b.see(main, &article("call-4"), "Recent history").await;
    b.see(main, &article("call-4"), "Support, with Alice Martin")
        .await;
    let count = b
        .run(json!({"op": "text", "page": main, "selector": format!("{} [data-history=count]", article("call-4"))}))
        .await;
    assert!(
        count
            .as_str()
            .is_some_and(|t| t.ends_with("interactions") || t.ends_with("interaction")),
        "{count}"
    );
    b.shot(main, "history").await;
    b.see(
        main,
        &four,
        &format!(
            "telegram: tg-777 moved from contact #{} to Dora Chat",
            eve.contact.id
        ),
    )
    .await;
    b.see(main, &four, "Messaging (1)").await;
    b.run(json!({"op": "waitSelector", "page": main, "selector": "#banner", "state": "hidden"}))
        .await;
    b.see(main, "header", "Live").await;

    // An agent without CRM access sees a summary and opens the card read-only through the
    // panel's link.
    let bobs = "bob";
    b.goto(bobs, &page_url).await;
    b.fill(bobs, "#sign-in", "Token", &bob.token).await;
    b.click(bobs, "#sign-in", "Sign in").await;
    b.see(bobs, "header", "Live").await;
    routing
        .client
        .offer_call("call-5", "+44 7400 123456", bob.user.0)
        .await
        .expect("offer call-5");
    let five = article("call-5");
    b.see(bobs, &five, "Summary only").await;
    b.click(bobs, &five, "Open card").await;
    b.see(bobs, "#card-dialog", "read-only").await;
    b.see(bobs, "#card-dialog", "Prefers calls after 18:00")
        .await;
    b.click(bobs, "#card-dialog", "Close").await;

    let problems = b.run(json!({"op": "problems"})).await;
    assert_eq!(problems, json!([]), "errors in the page");
    drop(b);
    eprintln!(
        "browser test took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}

fn view_id(view: &pb::ContactView) -> Option<i64> {
    match view.view.as_ref()? {
        pb::contact_view::View::Contact(c) => Some(c.id),
        pb::contact_view::View::Summary(s) => Some(s.id),
    }
}

#[tokio::test]
async fn the_page_is_served_next_to_grpc_only_with_web() {
    let app = TestApp::start_with(|c| c.web = WebPanel::SamePort).await;
    let page = http1(app.addr(), "GET / HTTP/1.1\r\nHost: localhost").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>Client info</title>"), "{page}");
    let script = http1(app.addr(), "GET /app.js HTTP/1.1\r\nHost: localhost").await;
    assert!(
        script
            .to_ascii_lowercase()
            .contains("content-type: text/javascript"),
        "{script}"
    );
    let missing = http1(app.addr(), "GET /nope HTTP/1.1\r\nHost: localhost").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    // gRPC on the same port is untouched.
    let d = app.domain("acme", "GB").await;
    let agent = app.actor(d, "Alice", AGENT).await;
    agent
        .client
        .list_labels("", 10)
        .await
        .expect("gRPC next to the page");

    let off = TestApp::start().await;
    let page = http1(off.addr(), "GET / HTTP/1.1\r\nHost: localhost").await;
    assert!(!page.contains("<title>Client info</title>"), "{page}");
}

#[tokio::test]
async fn web_listen_serves_the_page_on_its_own_address_with_cors() {
    let app = TestApp::start_with(|c| {
        c.web = WebPanel::Listen("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let web = app.web_addr();
    assert_ne!(web, app.addr());
    let config = http1(web, "GET /config.json HTTP/1.1\r\nHost: localhost").await;
    assert!(
        config.contains(&format!(
            r#"{{"api_port":{},"api_tls":false}}"#,
            app.addr().port()
        )),
        "{config}"
    );
    let preflight = http1(
        app.addr(),
        &format!(
            "OPTIONS /clientinfo.v1.ClientInfoService/WatchAgentSession HTTP/1.1\r\n\
             Host: localhost\r\nOrigin: http://localhost:{}\r\n\
             Access-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: authorization,content-type,x-grpc-web",
            web.port()
        ),
    )
    .await;
    assert!(
        preflight.to_ascii_lowercase().contains(&format!(
            "access-control-allow-origin: http://localhost:{}",
            web.port()
        )),
        "{preflight}"
    );
    // The gRPC port does not serve the page then.
    let page = http1(app.addr(), "GET / HTTP/1.1\r\nHost: localhost").await;
    assert!(!page.contains("<title>Client info</title>"), "{page}");
}

#[tokio::test]
async fn the_committed_bundle_matches_its_sources() {
    if let Err(why) = node() {
        eprintln!("SKIPPED the_committed_bundle_matches_its_sources: {why}");
        return;
    }
    let out = std::process::Command::new("bash")
        .arg(repo().join("web/build.sh"))
        .arg("--check")
        .output()
        .expect("run web/build.sh --check");
    assert!(
        out.status.success(),
        "web/build.sh --check failed: rebuild the page (bash web/build.sh) and commit web/gen and web/dist\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
