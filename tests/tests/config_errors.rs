//! Broken configurations: every error listed with file, line, key and
//! reason, exit 1, nothing started; `config show` and `config interfaces`.

use cairn_tests::run_cairn;

const BROKEN: &str = r#"version = 1

[node]
hostname = "mail.example.org"
colour = "blue"

[listeners.smtp]
port = 70000

[limits]
max_message_size = "big"
"#;

#[test]
fn every_error_is_listed_with_its_line_and_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("broken.toml");
    std::fs::write(&path, BROKEN).expect("write");
    let file = path.to_str().expect("utf-8");
    for args in [vec!["config", "check", file], vec!["run", "--config", file]] {
        let (status, stdout, stderr) = run_cairn(&args);
        assert_eq!(status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        for (line, key) in [
            (5, "node.colour"),
            (8, "listeners.smtp.port"),
            (11, "limits.max_message_size"),
        ] {
            assert!(
                stderr
                    .lines()
                    .any(|l| l.contains(&format!("broken.toml:{line}:")) && l.contains(key)),
                "{args:?}: no error for {key} at line {line} in:\n{stderr}"
            );
        }
        assert!(!stdout.contains("listening"), "nothing may start: {stdout}");
    }
}

#[test]
fn a_good_file_checks_clean_and_show_prints_the_effective_config() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("good.toml");
    std::fs::write(&path, "[listeners.imap]\nport = 1143\n").expect("write");
    let file = path.to_str().expect("utf-8");
    let (status, stdout, stderr) = run_cairn(&["config", "check", file]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("ok"));
    let (status, stdout, _) = run_cairn(&["config", "show", "--config", file]);
    assert_eq!(status.code(), Some(0));
    assert!(stdout.contains("1143"), "{stdout}");
    assert!(
        !stdout.contains("10143"),
        "the override replaces the default: {stdout}"
    );
    assert!(stdout.contains("10025"), "other defaults remain: {stdout}");
}

#[test]
fn interfaces_lists_loopback() {
    let (status, stdout, _) = run_cairn(&["config", "interfaces"]);
    assert_eq!(status.code(), Some(0));
    assert!(
        stdout.contains("lo") && stdout.contains("127.0.0.1"),
        "{stdout}"
    );
}
