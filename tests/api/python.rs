//! A second language: Python stubs generated from `proto/` with grpcio-tools (PyPI) call the
//! server (`tests/python/call.py`), and read the error details the Rust SDK reads; routing in
//! Python offers a call with an identification key.

use std::path::Path;

use client_info_sdk::pb;
use client_info_tests::{ALL, TestApp};

#[tokio::test]
async fn python_stubs_generated_from_the_protos_call_the_server() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = repo.join(".ci/tools/venv/bin/python");
    let ready = |p: &Path| {
        std::process::Command::new(p)
            .args(["-c", "import grpc_tools, grpc_status"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let status = std::process::Command::new("bash")
            .arg(repo.join(".ci/install-tools"))
            .status()
            .expect("run .ci/install-tools");
        assert!(
            status.success() && ready(&python),
            "grpcio-tools not installed"
        );
    }
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (ann, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann Lee".into(),
            labels: vec!["VIP".into()],
            attributes: vec![pb::Attribute {
                key: "account_no".into(),
                value: "12345".into(),
            }],
            ..Default::default()
        })
        .await
        .expect("create");
    let out_dir = std::env::temp_dir().join(format!("client-info-py-{}", std::process::id()));
    let mut command = std::process::Command::new(&python);
    command
        .arg(repo.join("tests/python/call.py"))
        .arg(app.addr().to_string())
        .arg(&crm.token)
        .arg(ann.id.to_string())
        .arg(&out_dir)
        .arg(crm.user.0.to_string());
    // Off the test's runtime thread: the server under test runs on it.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run python");
    let _ = std::fs::remove_dir_all(&out_dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[0]["contact"]["displayName"], "Ann Lee");
    assert_eq!(lines[0]["contact"]["labels"][0], "VIP");
    assert_eq!(lines[1]["code"], "NOT_FOUND");
    assert_eq!(lines[1]["reason"], "CONTACT_NOT_FOUND");
    // Routing in Python offers a call with a key the caller entered in the IVR.
    let identification = &lines[2]["identification"];
    assert_eq!(
        identification["outcome"],
        "IDENTIFICATION_OUTCOME_IDENTIFIED"
    );
    assert_eq!(
        identification["reason"],
        "one contact: attribute account_no = 12345, entered in the IVR"
    );
    assert_eq!(lines[3]["code"], "INVALID_ARGUMENT");
    assert_eq!(
        lines[3]["fields"],
        serde_json::json!(["identification_keys[0].attribute.key"])
    );
}
