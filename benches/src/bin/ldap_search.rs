//! LDAP address-book searches, side by side in one run: the same 10,000
//! inetOrgPerson entries served by Cairn (release build; entries written
//! into its directory before it starts) and by OpenLDAP slapd (mdb backend,
//! equality and substring indexes; benches/peers/slapd.sh), the same load
//! generator (the ldap3 client on tokio, N connections each bound once, then
//! Thunderbird-style substring searches back to back), alternating rounds.
//!
//! `cargo build --release -p cairn && cargo run --release -p cairn-benches
//! --bin ldap_search -- --write-results`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use cairn_benches::appliance::{free_ports, workspace, Appliance};
use cairn_benches::report::{new_histogram, record, TABLE_HEADER};
use cairn_benches::{Measurement, ResultsFile};
use cairn_storage::directory::{Directory, NewAccount};
use cairn_storage::shard_store::ShardStore;
use clap::Parser;
use hdrhistogram::Histogram;
use ldap3::{LdapConnAsync, Scope, SearchEntry};

const BASE: &str = "dc=example,dc=org";
const PASSWORD: &str = "bench password 1";

#[derive(Parser)]
struct Args {
    /// Entries in the directory.
    #[arg(long, default_value_t = 10_000)]
    entries: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Seconds per measured round.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Clients binding back to back in the last round.
    #[arg(long, default_value_t = 8)]
    binders: usize,
    /// Rounds per server (alternating); the best is reported.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// The cairn binary (default: this workspace's release build).
    #[arg(long)]
    cairn: Option<PathBuf>,
    /// Replace this scenario's section of benches/RESULTS.md.
    #[arg(long)]
    write_results: bool,
}

/// Entry `i`: (uid, given name, surname).
fn person(i: usize) -> (String, String, String) {
    (
        format!("user{i}"),
        format!("Given{i}"),
        format!("Surname{i}"),
    )
}

/// Writes the entries into a fresh data directory's directory (shard 0).
fn provision_cairn(data: &Path, entries: usize) {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .expect("hash")
        .to_string();
    let data = data.to_path_buf();
    cairn_shards::local::block_on(async move {
        let (store, _) = ShardStore::open(&data, 0).await.expect("open shard 0");
        let dir = Directory::new(store.tables.clone());
        dir.add_domain("example.org", None, None)
            .await
            .expect("domain");
        for i in 0..entries {
            let (uid, given, sur) = person(i);
            dir.add_account(NewAccount {
                address: format!("{uid}@example.org"),
                password_hash: hash.clone(),
                display_name: format!("{given} {sur}"),
                given_name: given,
                surname: sur,
                ..NewAccount::default()
            })
            .await
            .expect("account");
        }
        store.log.close().await;
    })
    .expect("executor");
}

fn slapd_ldif(entries: usize) -> String {
    let mut out = String::new();
    for i in 0..entries {
        let (uid, given, sur) = person(i);
        out.push_str(&format!(
            "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given} {sur}\nsn: {sur}\ngivenName: {given}\ndisplayName: {given} {sur}\nmail: {uid}@example.org\nuserPassword: {PASSWORD}\n\n"
        ));
    }
    out
}

/// `clients` connections bind once, then search for `seconds`, while
/// `binders` more connections bind again and again; returns the searches
/// and the binds.
fn load(
    subject: &str,
    port: u16,
    bind_dn: &str,
    args: &Args,
    binders: usize,
) -> (Measurement, Measurement) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let url = format!("ldap://127.0.0.1:{port}");
    let deadline = Duration::from_secs(args.seconds);
    let entries = args.entries;
    let (ops, hist, elapsed, binds) = rt.block_on(async {
        let started = Instant::now();
        let storm: Vec<_> = (0..binders)
            .map(|_| {
                let (url, bind_dn) = (url.clone(), bind_dn.to_string());
                tokio::spawn(async move {
                    let (conn, mut ldap) = LdapConnAsync::new(&url).await.expect("connect");
                    ldap3::drive!(conn);
                    let mut h: Histogram<u64> = new_histogram();
                    while started.elapsed() < deadline {
                        let t0 = Instant::now();
                        let rc = ldap.simple_bind(&bind_dn, PASSWORD).await.expect("bind").rc;
                        assert_eq!(rc, 0, "bind refused");
                        record(&mut h, t0.elapsed());
                    }
                    let _ = ldap.unbind().await;
                    h
                })
            })
            .collect();
        let tasks: Vec<_> = (0..args.clients)
            .map(|c| {
                let (url, bind_dn) = (url.clone(), bind_dn.to_string());
                tokio::spawn(async move {
                    let (conn, mut ldap) = LdapConnAsync::new(&url).await.expect("connect");
                    ldap3::drive!(conn);
                    ldap.simple_bind(&bind_dn, PASSWORD)
                        .await
                        .expect("bind")
                        .success()
                        .expect("bind result");
                    let mut h: Histogram<u64> = new_histogram();
                    let mut n = 0u64;
                    let mut x = (c as u64 + 1) * 2654435761;
                    while started.elapsed() < deadline {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Four digits: one person, as a type-ahead search
                        // finds once a few characters are typed.
                        let needle = (1000 + x % (entries as u64 - 1000)).to_string();
                        let filter = format!(
                            "(|(cn=*{needle}*)(mail=*{needle}*)(sn=*{needle}*)(givenName=*{needle}*))"
                        );
                        let t0 = Instant::now();
                        let (rs, res) = ldap
                            .search(BASE, Scope::Subtree, &filter, vec!["cn", "mail"])
                            .await
                            .expect("search")
                            .success()
                            .map(|(rs, r)| (rs, r.rc))
                            .unwrap_or((Vec::new(), 1));
                        assert_eq!(res, 0, "search failed");
                        assert!(
                            rs.into_iter().map(SearchEntry::construct).any(|e| e.attrs.contains_key("mail")),
                            "{filter} found nothing"
                        );
                        record(&mut h, t0.elapsed());
                        n += 1;
                    }
                    let _ = ldap.unbind().await;
                    (n, h)
                })
            })
            .collect();
        let mut total = 0;
        let mut all = new_histogram();
        for t in tasks {
            let (n, h) = t.await.expect("client task");
            total += n;
            all.add(&h).expect("merge");
        }
        let mut binds = new_histogram();
        for t in storm {
            binds.add(t.await.expect("binder task")).expect("merge");
        }
        (total, all, started.elapsed(), binds)
    });
    let mut m = Measurement::new(subject);
    m.ops = ops;
    m.latency_us = hist;
    m.elapsed = elapsed;
    let mut b = Measurement::new(subject);
    b.ops = binds.len();
    b.latency_us = binds;
    b.elapsed = elapsed;
    println!("searches {}", m.summary());
    if binders > 0 {
        println!("binds    {}", b.summary());
    }
    (m, b)
}

fn best(a: Option<Measurement>, b: Measurement) -> Option<Measurement> {
    match a {
        Some(a) if a.throughput() >= b.throughput() => Some(a),
        _ => Some(b),
    }
}

fn main() {
    let args = Args::parse();
    assert!(
        args.entries > 1000,
        "--entries must be over 1000 (the needles have four digits)"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let cairn_dir = tmp.path().join("cairn");
    std::fs::create_dir_all(&cairn_dir).expect("mkdir");
    let t0 = Instant::now();
    provision_cairn(&cairn_dir.join("data"), args.entries);
    println!(
        "cairn: {} entries written in {:.1} s",
        args.entries,
        t0.elapsed().as_secs_f64()
    );
    let cairn = Appliance::start(args.cairn.as_deref(), &cairn_dir);
    let cairn_port = cairn.port("ldap");

    let slapd_dir = tmp.path().join("slapd");
    std::fs::create_dir_all(&slapd_dir).expect("mkdir");
    let ldif = slapd_dir.join("entries.ldif");
    std::fs::write(&ldif, slapd_ldif(args.entries)).expect("ldif");
    let slapd_port = free_ports(1)[0];
    let script = workspace().join("benches/peers/slapd.sh");
    let status = Command::new(&script)
        .arg("start")
        .arg(&slapd_dir)
        .arg(slapd_port.to_string())
        .arg(&ldif)
        .status()
        .expect("slapd.sh");
    assert!(status.success(), "slapd did not start");

    let bind_dn = format!("uid=user0,ou=people,{BASE}");
    let (mut c_best, mut s_best) = (None, None);
    for _ in 0..args.rounds {
        c_best = best(c_best, load("cairn", cairn_port, &bind_dn, &args, 0).0);
        s_best = best(
            s_best,
            load("slapd (mdb)", slapd_port, &bind_dn, &args, 0).0,
        );
    }
    // The same searches while more clients bind back to back: Cairn checks
    // each password with argon2id on its blocking pool, slapd compares a
    // stored plain-text userPassword, so the bind rates are not a fair
    // comparison; what matters is that searches keep being answered.
    let (c_storm, c_binds) = load("cairn", cairn_port, &bind_dn, &args, args.binders);
    let (s_storm, s_binds) = load("slapd (mdb)", slapd_port, &bind_dn, &args, args.binders);
    let _ = Command::new(&script).arg("stop").arg(&slapd_dir).status();
    drop(cairn);

    let (Some(c), Some(s)) = (c_best, s_best) else {
        return;
    };
    let storm = format!("… while {} clients bind back to back", args.binders);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let scenario = format!(
        "substring search, {} entries, {} clients",
        args.entries, args.clients
    );
    let body = format!(
        "Address-book searches (`(|(cn=*N*)(mail=*N*)(sn=*N*)(givenName=*N*))`, N a random four-digit number, so one person matches, attributes cn and mail) over {} inetOrgPerson entries, {} connections each bound once, on a {cores}-core machine: Cairn (release, one shard per core) against OpenLDAP slapd (mdb, eq+sub indexes on cn, sn, givenName, mail, uid), the same ldap3 load generator (tokio, 2 threads), {} s per round, best of {} alternating rounds. ops/s = searches answered per second; ratio is to slapd; latencies per search. The last two rows repeat the searches while {} more clients bind back to back: Cairn verified {:.0} binds/s (argon2id, default cost, on the blocking pool; bind p50 {} µs, p99 {} µs), slapd {:.0} binds/s (plain-text userPassword, so no comparison of bind rates is meant).\n\n{TABLE_HEADER}\n{}\n{}\n{}\n{}\n\nCommand: `cargo build --release -p cairn && cargo run --release -p cairn-benches --bin ldap_search -- --entries {} --clients {} --seconds {} --rounds {} --binders {} --write-results`\n",
        args.entries,
        args.clients,
        args.seconds,
        args.rounds,
        args.binders,
        c_binds.throughput(),
        c_binds.percentile_us(50.0),
        c_binds.percentile_us(99.0),
        s_binds.throughput(),
        c.markdown_row(&scenario, &s),
        s.markdown_row(&scenario, &s),
        c_storm.markdown_row(&storm, &s_storm),
        s_storm.markdown_row(&storm, &s_storm),
        args.entries,
        args.clients,
        args.seconds,
        args.rounds,
        args.binders
    );
    println!("\n{body}");
    if args.write_results {
        ResultsFile::default_path()
            .write_section(
                &format!("LDAP searches vs slapd, {cores}-core machine"),
                &body,
            )
            .expect("write RESULTS.md");
    }
}
