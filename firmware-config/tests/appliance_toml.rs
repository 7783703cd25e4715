//! Loading `appliance.toml` end to end through the public API: defaults,
//! partial overrides, every error at once with its position, migrations,
//! the `config show` round trip, and no panic on any input.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use cairn_config::{Config, ConfigError, Service, TlsMode, CURRENT_VERSION};
use proptest::prelude::*;

fn errors(text: &str) -> Vec<ConfigError> {
    match Config::from_toml_str(text, "appliance.toml") {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.0,
    }
}

/// Each error as `line:column key`, the parts a test pins down.
fn positions(text: &str) -> Vec<String> {
    errors(text)
        .iter()
        .map(|e| format!("{}:{} {}", opt(e.line), opt(e.column), e.key))
        .collect()
}

fn opt(n: Option<usize>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

fn listener(config: &Config, service: Service) -> &cairn_config::ListenerConfig {
    config
        .listeners
        .get(&service)
        .unwrap_or_else(|| panic!("no listener for {service}"))
}

#[test]
fn the_embedded_default_validates_clean_and_is_the_dev_setup() {
    let config = Config::embedded_default();
    assert_eq!(config.validate(), Vec::new());
    assert_eq!(config.version, CURRENT_VERSION);
    assert_eq!(config.data_dir, PathBuf::from("./cairn-data"));
    assert_eq!(config.listeners.len(), Service::ALL.len());
    for service in Service::ALL {
        let l = listener(&config, service);
        assert!(l.enabled);
        assert_eq!(l.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(l.port, service.dev_port());
        assert_eq!(l.tls, service.default_tls());
    }
    assert_eq!(listener(&config, Service::Smtps).tls, TlsMode::Implicit);
    assert_eq!(
        listener(&config, Service::Submission).tls,
        TlsMode::Starttls
    );
    assert_eq!(listener(&config, Service::Http).tls, TlsMode::None);
}

#[test]
fn an_empty_file_is_the_embedded_default() {
    let config = Config::from_toml_str("", "appliance.toml").expect("empty file");
    assert_eq!(config, Config::embedded_default());
}

#[test]
fn show_output_reads_back_to_the_same_config() {
    let default = Config::embedded_default();
    let again = Config::from_toml_str(&default.to_toml_redacted(), "shown.toml");
    assert_eq!(again, Ok(default));

    let mut custom = Config::embedded_default();
    custom.data_dir = PathBuf::from("/var/lib/cairn");
    custom.node.hostname = "mail.example.com".to_string();
    custom.node.domains = vec!["example.com".to_string(), "example.org".to_string()];
    custom.tls.cert = Some(PathBuf::from("tls/chain.pem"));
    custom.tls.key = Some(PathBuf::from("/etc/cairn/key.pem"));
    custom.shards.count = 4;
    custom.shards.pin = false;
    custom.limits.max_message_size = 60 << 20;
    custom.log.level = "warn,cairn_http=trace".to_string();
    custom.log.format = cairn_config::LogFormat::Json;
    custom.metrics.enabled = false;
    custom.media.address = "::".parse().expect("::");
    if let Some(pop3) = custom.listeners.get_mut(&Service::Pop3) {
        pop3.enabled = false;
    }
    if let Some(smtp) = custom.listeners.get_mut(&Service::Smtp) {
        smtp.address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        smtp.port = 25;
    }
    assert_eq!(custom.validate(), Vec::new());
    let shown = custom.to_toml_redacted();
    assert!(shown.contains("[listeners.smtp]"), "{shown}");
    assert_eq!(Config::from_toml_str(&shown, "shown.toml"), Ok(custom));
}

#[test]
fn three_errors_in_three_sections_are_all_reported_with_their_lines() {
    let text = "\
version = 1

[node]
name = \"mail-1\"
hostname = \"mail server\"

[limits]
max_line_length = \"long\"

[listeners.imap]
address = \"0.0.0.0\"
port = 70000
";
    let found = errors(text);
    assert_eq!(
        found.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "appliance.toml:5:12: node.hostname: \"mail server\" is not a valid name: ' ' is \
             not allowed (letters, digits and '-' only)",
            "appliance.toml:8:19: limits.max_line_length: invalid type: string \"long\", \
             expected usize",
            "appliance.toml:12:8: listeners.imap.port: invalid value 70000, expected a port \
             1..=65535",
        ]
    );
}

#[test]
fn several_bad_values_in_one_section_are_all_reported() {
    let text = "\
[listeners.smtp]
port = 0
address = \"1.2.3\"
tls = \"sometimes\"
enabled = \"yes\"
";
    assert_eq!(
        positions(text),
        [
            "2:8 listeners.smtp.port",
            "3:11 listeners.smtp.address",
            "4:7 listeners.smtp.tls",
            "5:11 listeners.smtp.enabled",
        ]
    );
    let reasons: Vec<String> = errors(text).into_iter().map(|e| e.reason).collect();
    assert!(
        reasons[2].contains("unknown variant `sometimes`"),
        "{reasons:?}"
    );
    assert!(reasons[3].contains("expected a boolean"), "{reasons:?}");
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    let text = "\
data_dri = \"/srv\"

[metrics]
enabled = true
pth = \"/m\"

[listeners.https]
port = 8443
adress = \"0.0.0.0\"

[listeners.smtpx]
port = 2525
";
    let found = errors(text);
    assert_eq!(
        positions(text),
        [
            "1:1 data_dri",
            "5:1 metrics.pth",
            "9:1 listeners.https.adress",
            "11:12 listeners.smtpx",
        ]
    );
    assert_eq!(found[1].reason, "unknown key");
    assert!(
        found[3].reason.contains("unknown variant `smtpx`"),
        "{}",
        found[3]
    );
}

#[test]
fn unknown_keys_in_dotted_and_inline_forms_are_found_too() {
    let text = "listeners.imap.prot = 1\ntls = { cert = \"c\", key = \"k\", chain = \"x\" }\n";
    assert_eq!(
        positions(text),
        ["1:16 listeners.imap.prot", "2:32 tls.chain"]
    );
}

#[test]
fn a_duplicate_listener_port_names_both_listeners() {
    let text = "\
[listeners.imap]
port = 1143

[listeners.pop3]
port = 1143
";
    let found = errors(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].to_string(),
        "appliance.toml:5:8: listeners.pop3.port: 127.0.0.1:1143 is already taken by \
         listeners.imap"
    );
    // Disabling one of them resolves it.
    let fixed = format!("{text}enabled = false\n");
    let config = Config::from_toml_str(&fixed, "appliance.toml").expect("no clash");
    assert!(!listener(&config, Service::Pop3).enabled);
}

#[test]
fn a_partial_listener_table_keeps_the_other_defaults() {
    let config =
        Config::from_toml_str("[listeners.imap]\nport = 1143\n", "appliance.toml").expect("valid");
    let imap = listener(&config, Service::Imap);
    assert_eq!(imap.port, 1143);
    assert!(imap.enabled);
    assert_eq!(imap.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(imap.tls, TlsMode::Starttls);
    let mut expected = Config::embedded_default();
    if let Some(l) = expected.listeners.get_mut(&Service::Imap) {
        l.port = 1143;
    }
    assert_eq!(config, expected, "nothing else changes");
}

#[test]
fn a_version_0_file_is_migrated() {
    let text = "version = 0\n\n[server]\ndata = \"/srv/cairn\"\n\n[node]\nname = \"old\"\n";
    let config = Config::from_toml_str(text, "old.toml").expect("migrates");
    assert_eq!(config.version, CURRENT_VERSION);
    assert_eq!(config.data_dir, PathBuf::from("/srv/cairn"));
    assert_eq!(config.node.name, "old");
    // A bad value keeps pointing at the line the operator wrote.
    let bad = errors("version = 0\n[server]\ndata = 7\n");
    assert_eq!((bad[0].line, bad[0].key.as_str()), (Some(3), "data_dir"));
    // [server] is not part of version 1.
    assert_eq!(positions("[server]\ndata = \"/srv\"\n"), ["1:2 server"]);
}

#[test]
fn a_file_from_a_newer_cairn_is_refused() {
    let found = errors("version = 2\n");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, Some(1));
    assert!(
        found[0].reason.contains("written by a newer Cairn"),
        "{}",
        found[0]
    );
}

#[test]
fn semantic_errors_point_at_the_key_that_was_written() {
    let text = "\
[tls]
key = \"key.pem\"

[media]
port_min = 31000
port_max = 30500

[metrics]
path = \"metrics\"

[shards]
count = 5000

[limits]
max_recipients = 0

[log]
level = \"verbose\"

[node]
domains = [\"example.com\",
           \"bad..example\"]
";
    assert_eq!(
        positions(text),
        [
            "2:7 tls.key",
            "5:12 media.port_min",
            "9:8 metrics.path",
            "12:9 shards.count",
            "15:18 limits.max_recipients",
            "18:9 log.level",
            "22:12 node.domains[1]",
        ]
    );
}

#[test]
fn antivirus_errors_point_at_their_keys() {
    let text = "\
[antivirus]
clamd = \"/run/clamav/clamd.ctl\"
clamd_timeout_ms = 0
action = \"quarantine\"
";
    assert_eq!(
        positions(text),
        [
            "2:9 antivirus.clamd",
            "3:20 antivirus.clamd_timeout_ms",
            "4:10 antivirus.action",
        ]
    );
    let wrong = errors("[antivirus]\naction = \"delete\"\n");
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(
        wrong[0].reason.contains("reject") && wrong[0].reason.contains("quarantine"),
        "{}",
        wrong[0]
    );
    let good = "[antivirus]\nclamd = \"tcp:127.0.0.1:3310\"\naction = \"quarantine\"\n\
                quarantine_account = \"quarantine@example.org\"\n";
    let config = Config::from_toml_str(good, "appliance.toml").expect("valid");
    assert_eq!(
        config.antivirus.action,
        cairn_config::VirusAction::Quarantine
    );
    assert_eq!(config.antivirus.clamd_timeout_ms, 30_000);
    let shown = config.to_toml_redacted();
    assert!(shown.contains("[antivirus]"), "{shown}");
    assert_eq!(Config::from_toml_str(&shown, "shown.toml"), Ok(config));
}

#[test]
fn bayes_settings_have_defaults_and_errors_point_at_their_keys() {
    let defaults = Config::embedded_default().antispam;
    assert!(defaults.bayes);
    assert_eq!(defaults.bayes_min_messages, 20);
    assert_eq!(defaults.bayes_spam_probability, 0.9);
    let text = "\
[antispam]
bayes_min_messages = 0
bayes_spam_probability = 0.4
";
    assert_eq!(
        positions(text),
        [
            "2:22 antispam.bayes_min_messages",
            "3:26 antispam.bayes_spam_probability",
        ]
    );
    assert_eq!(
        positions("[antispam]\nbayes_spam_probability = 1.5\n"),
        ["2:26 antispam.bayes_spam_probability"]
    );
    let good = "[antispam]\nbayes = false\nbayes_min_messages = 5\nbayes_spam_probability = 0.99\n";
    let config = Config::from_toml_str(good, "appliance.toml").expect("valid");
    assert!(!config.antispam.bayes);
    assert_eq!(config.antispam.bayes_min_messages, 5);
    let shown = config.to_toml_redacted();
    assert!(shown.contains("bayes_spam_probability = 0.99"), "{shown}");
    assert_eq!(Config::from_toml_str(&shown, "shown.toml"), Ok(config));
}

#[test]
fn storage_settings_have_defaults_and_errors_point_at_their_keys() {
    let defaults = Config::embedded_default().storage;
    assert_eq!(defaults.segment_mib, 64);
    assert_eq!(defaults.compaction_min_dead_percent, 50);
    let text = "\
[storage]
segment_mib = 0
group_commit_max_kib = 16
group_commit_max_wait_us = 1000000
checkpoint_every_mib = 0
compaction_min_dead_percent = 101
";
    assert_eq!(
        positions(text),
        [
            "2:15 storage.segment_mib",
            "3:24 storage.group_commit_max_kib",
            "4:28 storage.group_commit_max_wait_us",
            "5:24 storage.checkpoint_every_mib",
            "6:31 storage.compaction_min_dead_percent",
        ]
    );
    // A message is stored whole in one segment.
    let too_big = "[limits]\nmax_message_size = 8388608\n\n[storage]\nsegment_mib = 8\n";
    assert_eq!(positions(too_big), ["2:20 limits.max_message_size"]);
    let good = "[limits]\nmax_message_size = 8000000\n\n[storage]\nsegment_mib = 8\ngroup_commit_max_wait_us = 200\ncompaction_min_dead_percent = 30\n";
    let config = Config::from_toml_str(good, "appliance.toml").expect("valid");
    assert_eq!(config.storage.segment_mib, 8);
    assert_eq!(config.storage.group_commit_max_wait_us, 200);
    assert_eq!(config.storage.compaction_min_dead_percent, 30);
    let shown = config.to_toml_redacted();
    assert!(
        shown.contains("compaction_min_dead_percent = 30"),
        "{shown}"
    );
    assert_eq!(Config::from_toml_str(&shown, "shown.toml"), Ok(config));
}

#[test]
fn a_listener_in_the_media_range_is_an_error() {
    assert_eq!(
        positions("[listeners.http]\nport = 30080\n"),
        ["2:8 listeners.http.port"]
    );
}

#[test]
fn a_syntax_error_has_its_line_and_column() {
    let found = errors("[node]\nname = \"a\"\nhostname = \n");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].line, found[0].column), (Some(3), Some(12)));
    assert!(found[0].key.is_empty());
    assert!(
        found[0].reason.starts_with("TOML syntax error: "),
        "{}",
        found[0]
    );
    assert!(!found[0].reason.contains('\n'));
    let duplicate = errors("[log]\nlevel = \"info\"\nlevel = \"debug\"\n");
    assert_eq!(duplicate[0].line, Some(3), "{}", duplicate[0]);
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("appliance.toml");
    std::fs::write(&path, "[shards]\ncount = 2\n").expect("write");
    let config = Config::load(&path).expect("loads");
    assert_eq!(config.shards.count, 2);

    std::fs::write(&path, "[shards]\ncount = -2\n").expect("write");
    let found = Config::load(&path).expect_err("negative count").0;
    let file = path.display().to_string();
    assert_eq!(found[0].file, file);
    assert!(found[0]
        .to_string()
        .starts_with(&format!("{file}:2:9: shards.count: ")));
}

#[test]
fn load_reports_unreadable_and_non_utf8_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    let found = Config::load(&missing).expect_err("missing file").0;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, None);
    assert!(found[0].reason.starts_with("cannot read: "), "{}", found[0]);

    let latin1 = dir.path().join("latin1.toml");
    std::fs::write(&latin1, b"[node]\nname = \"caf\xe9\"\n").expect("write");
    let found = Config::load(&latin1).expect_err("not UTF-8").0;
    assert_eq!((found[0].line, found[0].column), (Some(2), Some(12)));
    assert_eq!(found[0].reason, "not UTF-8 text");
}

#[test]
fn tls_paths_resolve_against_the_data_dir() {
    let mut config = Config::embedded_default();
    config.data_dir = PathBuf::from("/data");
    assert_eq!(
        config.tls_paths(),
        (
            PathBuf::from("/data/tls/cert.pem"),
            PathBuf::from("/data/tls/key.pem")
        )
    );
    config.tls.cert = Some(PathBuf::from("certs/chain.pem"));
    config.tls.key = Some(PathBuf::from("/etc/key.pem"));
    assert_eq!(
        config.tls_paths(),
        (
            PathBuf::from("/data/certs/chain.pem"),
            PathBuf::from("/etc/key.pem")
        )
    );
}

/// Lines that a config file could plausibly contain, good and bad, so that
/// generated files reach every section and reader rather than stopping at
/// the first syntax error.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[node]".to_string()),
        Just("[listeners.smtp]".to_string()),
        Just("[listeners.bogus]".to_string()),
        Just("[limits]".to_string()),
        Just("[media]".to_string()),
        Just("[server]".to_string()),
        Just("version = 0".to_string()),
        Just("port = 70000".to_string()),
        Just("address = \"::1\"".to_string()),
        Just("tls = \"implicit\"".to_string()),
        Just("domains = [\"a.com\", 1]".to_string()),
        Just("data = \"/x\"".to_string()),
        Just("x = { y = [1, { z = 2 }] }".to_string()),
        (
            "[a-z_.]{1,20}",
            prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                "\"[^\"\\\\]{0,10}\"",
                Just("true".to_string()),
            ],
        )
            .prop_map(|(k, v)| format!("{k} = {v}")),
        ".{0,20}",
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Config::from_toml_str(&text, "fuzz.toml");
    }

    #[test]
    fn config_like_text_never_panics_and_errors_are_positioned(
        lines in proptest::collection::vec(fragment(), 0..12)
    ) {
        let text = lines.join("\n");
        if let Err(errors) = Config::from_toml_str(&text, "fuzz.toml") {
            prop_assert!(!errors.0.is_empty());
            let line_count = text.lines().count().max(1);
            for error in &errors.0 {
                prop_assert!(error.line.is_none_or(|l| l >= 1 && l <= line_count + 1), "{}", error);
            }
        }
    }
}
