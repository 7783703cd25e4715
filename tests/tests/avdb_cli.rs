//! `cairn avdb update` and `cairn avdb show`: a valid database lands in
//! the data directory atomically, an invalid one is refused with its line
//! numbers and changes nothing.

use cairn_tests::run_cairn;

/// `cairn-custom-marker` as hex, a Cairn body signature.
const VALID: &str = "# test signatures\n\
                     Cairn.Test.Custom:636169726e2d637573746f6d2d6d61726b6572\n\
                     Clam.Test.Ndb:0:*:6d616c77*77617265\n";

const INVALID: &str = "# line 1\nGood.One:41424344\nBad.Hex:41zz4344\nClam.Wild:0:*:4142??4344\n";

#[test]
fn update_installs_a_valid_database_and_show_reports_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let data_arg = data.to_str().expect("utf-8");
    let file = tmp.path().join("custom.db");
    std::fs::write(&file, VALID).expect("write");

    let (status, stdout, stderr) = run_cairn(&["avdb", "show", "--data-dir", data_arg]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("signatures: 1"), "built-in only: {stdout}");
    assert!(stdout.contains("source: built-in"), "{stdout}");

    let (status, stdout, stderr) = run_cairn(&[
        "avdb",
        "update",
        file.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]);
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("3 signatures"), "{stdout}");
    let installed = data.join("avdb/signatures.db");
    assert_eq!(
        std::fs::read_to_string(&installed).expect("installed"),
        VALID
    );
    let leftovers: Vec<_> = std::fs::read_dir(data.join("avdb"))
        .expect("avdb dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    let (status, stdout, stderr) = run_cairn(&["avdb", "show", "--data-dir", data_arg]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("signatures: 3"), "{stdout}");
    assert!(stdout.contains("avdb/signatures.db"), "{stdout}");
}

#[test]
fn update_refuses_an_invalid_database_with_line_numbers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let data_arg = data.to_str().expect("utf-8");
    let good = tmp.path().join("good.db");
    std::fs::write(&good, VALID).expect("write");
    let (status, _, stderr) = run_cairn(&[
        "avdb",
        "update",
        good.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]);
    assert_eq!(status.code(), Some(0), "{stderr}");

    let bad = tmp.path().join("bad.db");
    std::fs::write(&bad, INVALID).expect("write");
    let (status, stdout, stderr) = run_cairn(&[
        "avdb",
        "update",
        bad.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]);
    assert_ne!(status.code(), Some(0), "{stdout}{stderr}");
    for line in [3, 4] {
        assert!(
            stderr.contains(&format!("bad.db:{line}:")),
            "no error for line {line}:\n{stderr}"
        );
    }
    assert!(!stderr.contains("bad.db:2:"), "line 2 is fine:\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(data.join("avdb/signatures.db")).expect("kept"),
        VALID,
        "the installed database is unchanged"
    );

    let (status, _, stderr) = run_cairn(&[
        "avdb",
        "update",
        tmp.path().join("missing.db").to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]);
    assert_ne!(status.code(), Some(0));
    assert!(stderr.contains("missing.db"), "{stderr}");
}
