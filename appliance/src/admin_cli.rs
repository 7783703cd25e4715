//! `cairn admin …`: the admin API from the command line. With no `--url`
//! and `--token`, it finds the local appliance through its configuration
//! (the HTTP listener, or HTTPS trusting the data directory's certificate)
//! and uses the API token kept in the data directory.

use std::io::BufRead;
use std::process::ExitCode;

use cairn_config::{Config, Service};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin_credential::TOKEN_FILE;
use crate::api::auth::{CLIENT_HEADER, CLI_ACTOR};
use crate::cli::{
    AccountCommand, AdminArgs, AdminCommand, AppPasswordCommand, CosCommand, DkimAlgorithmArg,
    DomainCommand, ListCommand, PasswordSource, QueueCommand, ServiceAccountCommand,
};

/// Runs one admin command; exit 1 with the API's message on failure.
pub fn run(args: AdminArgs) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cairn admin: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The appliance to talk to.
struct Target {
    client: Client,
    base: String,
    token: String,
}

fn target(args: &AdminArgs) -> Result<Target, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| format!("invalid configuration:\n{e}"))?,
        None => Config::embedded_default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    let token = match &args.token {
        Some(t) => t.clone(),
        None => {
            let file = config.data_dir.join(TOKEN_FILE);
            std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read the API token {}: {e} (pass --token, or run where the appliance's data directory is)", file.display()))?
                .trim()
                .to_string()
        }
    };
    let mut builder = Client::builder().timeout(std::time::Duration::from_secs(60));
    let base = match &args.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let enabled = |s: Service| config.listeners.get(&s).filter(|l| l.enabled);
            let local = |l: &cairn_config::ListenerConfig| {
                let ip = if l.address.is_unspecified() {
                    std::net::IpAddr::from([127, 0, 0, 1])
                } else {
                    l.address
                };
                std::net::SocketAddr::new(ip, l.port)
            };
            if let Some(http) = enabled(Service::Http) {
                format!("http://{}", local(http))
            } else if let Some(https) = enabled(Service::Https) {
                let (cert, _) = config.tls_paths();
                let pem = std::fs::read(&cert)
                    .map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
                let root = reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                builder = builder.add_root_certificate(root);
                format!("https://localhost:{}", local(https).port())
            } else {
                return Err("the configuration enables no HTTP listener: pass --url".into());
            }
        }
    };
    let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
    Ok(Target {
        client,
        base,
        token,
    })
}

impl Target {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .header(CLIENT_HEADER, CLI_ACTOR)
    }

    /// Sends the request; the JSON reply (Null for 204), or the API's error.
    fn send(&self, rb: RequestBuilder) -> Result<Value, String> {
        let reply = rb
            .send()
            .map_err(|e| format!("cannot reach the appliance at {}: {e}", self.base))?;
        let status = reply.status();
        let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
            Value::Null
        } else {
            reply
                .json()
                .map_err(|e| format!("unreadable reply ({status}): {e}"))?
        };
        if status.is_success() {
            return Ok(body);
        }
        let error = &body["error"];
        let field = error["field"]
            .as_str()
            .map(|f| format!(" [{f}]"))
            .unwrap_or_default();
        Err(format!(
            "{}{field} ({} {})",
            error["message"].as_str().unwrap_or("request failed"),
            status.as_u16(),
            error["code"].as_str().unwrap_or("")
        ))
    }

    /// Every page of a list.
    fn list_all(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("limit", "1000".into()));
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let page = self.send(self.request(Method::GET, path).query(&q))?;
            let batch = page["items"].as_array().cloned().unwrap_or_default();
            let key = if path == "/domains" {
                "name"
            } else {
                "address"
            };
            after = batch
                .last()
                .and_then(|v| v[key].as_str())
                .map(str::to_string);
            let done = batch.len() < 1000;
            items.extend(batch);
            if done || after.is_none() {
                return Ok(items);
            }
        }
    }
}

fn read_password(source: &PasswordSource) -> Result<String, String> {
    match &source.password {
        Some(p) => Ok(p.clone()),
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        }
    }
}

fn encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

fn print_account(a: &Value) {
    for key in [
        "address",
        "display_name",
        "status",
        "quota_bytes",
        "class_of_service",
        "shard",
        "aliases",
    ] {
        println!("{key:<16} {}", a[key].to_string().trim_matches('"'));
    }
}

fn print_class(c: &Value) {
    for key in [
        "name",
        "quota_bytes",
        "max_message_size",
        "min_password_length",
    ] {
        println!("{key:<19} {}", c[key]);
    }
    println!("{:<19} {}", "features", features(c).join(", "));
}

/// The features a class has on, by name.
fn features(c: &Value) -> Vec<String> {
    c["features"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .map(|(name, _)| name.clone())
        .collect()
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn execute(args: &AdminArgs) -> Result<(), String> {
    let t = target(args)?;
    let out = |v: &Value, text: &dyn Fn(&Value)| {
        if args.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            text(v);
        }
    };
    match &args.command {
        AdminCommand::Domain(cmd) => match cmd {
            DomainCommand::Add {
                name,
                alias_of,
                catch_all,
            } => {
                let body = json!({ "name": name, "alias_of": alias_of, "catch_all": catch_all });
                let d = t.send(t.request(Method::POST, "/domains").json(&body))?;
                out(&d, &|d| {
                    println!("added domain {}", d["name"].as_str().unwrap_or_default())
                });
            }
            DomainCommand::List { search } => {
                let all = Value::from(t.list_all("/domains", &search_query(search))?);
                out(&all, &|all| {
                    for d in all.as_array().into_iter().flatten() {
                        match d["alias_of"].as_str() {
                            Some(target) => println!(
                                "{} (alias of {target})",
                                d["name"].as_str().unwrap_or_default()
                            ),
                            None => println!("{}", d["name"].as_str().unwrap_or_default()),
                        }
                    }
                });
            }
            DomainCommand::Show { name } => {
                let d = t.send(t.request(Method::GET, &format!("/domains/{}", encode(name))))?;
                out(&d, &|d| {
                    for key in ["name", "alias_of", "catch_all"] {
                        println!("{key:<10} {}", d[key].to_string().trim_matches('"'));
                    }
                });
            }
            DomainCommand::Delete { name, force } => {
                let path = format!("/domains/{}", encode(name));
                t.send(
                    t.request(Method::DELETE, &path)
                        .query(&[("force", force.to_string())]),
                )?;
                out(&json!({ "deleted": name }), &|_| {
                    println!("deleted domain {name}")
                });
            }
            DomainCommand::Dkim {
                name,
                algorithm,
                selector,
                show,
                remove,
            } => dkim(&t, name, *algorithm, selector, *show, *remove, &out)?,
        },
        AdminCommand::Account(cmd) => match cmd {
            AccountCommand::Add {
                address,
                password,
                name,
                quota,
                class,
            } => {
                let body = json!({
                    "address": address,
                    "password": read_password(password)?,
                    "display_name": name.clone().unwrap_or_default(),
                    "quota_bytes": quota,
                    "class_of_service": class,
                });
                let a = t.send(t.request(Method::POST, "/accounts").json(&body))?;
                out(&a, &|a| {
                    println!(
                        "added account {} on shard {}",
                        a["address"].as_str().unwrap_or_default(),
                        a["shard"]
                    )
                });
            }
            AccountCommand::List { search } => {
                let all = Value::from(t.list_all("/accounts", &search_query(search))?);
                out(&all, &|all| {
                    for a in all.as_array().into_iter().flatten() {
                        println!(
                            "{:<40} {:<8} {}",
                            a["address"].as_str().unwrap_or_default(),
                            a["status"].as_str().unwrap_or_default(),
                            a["display_name"].as_str().unwrap_or_default()
                        );
                    }
                });
            }
            AccountCommand::Show { address } => {
                let a =
                    t.send(t.request(Method::GET, &format!("/accounts/{}", encode(address))))?;
                out(&a, &print_account);
            }
            AccountCommand::SetPassword { address, password } => {
                let body = json!({ "password": read_password(password)? });
                let path = format!("/accounts/{}", encode(address));
                let a = t.send(t.request(Method::PATCH, &path).json(&body))?;
                out(&a, &|_| println!("password of {address} changed"));
            }
            AccountCommand::Lock { address } | AccountCommand::Unlock { address } => {
                let status = if matches!(cmd, AccountCommand::Lock { .. }) {
                    "Locked"
                } else {
                    "Active"
                };
                let path = format!("/accounts/{}", encode(address));
                let a = t.send(
                    t.request(Method::PATCH, &path)
                        .json(&json!({ "status": status })),
                )?;
                out(&a, &|_| {
                    println!("{address} is now {}", status.to_lowercase())
                });
            }
            AccountCommand::AddAlias { address, alias } => {
                let path = format!("/accounts/{}/aliases", encode(address));
                let a = t.send(
                    t.request(Method::POST, &path)
                        .json(&json!({ "alias": alias })),
                )?;
                out(&a, &|_| println!("{alias} now reaches {address}"));
            }
            AccountCommand::Delete { address } => {
                t.send(t.request(Method::DELETE, &format!("/accounts/{}", encode(address))))?;
                out(&json!({ "deleted": address }), &|_| {
                    println!("deleted account {address}")
                });
            }
            AccountCommand::SetClass { address, class } => {
                let path = format!("/accounts/{}", encode(address));
                let a = t.send(
                    t.request(Method::PATCH, &path)
                        .json(&json!({ "class_of_service": class })),
                )?;
                out(&a, &|a| {
                    println!(
                        "{address} is now in class {}",
                        a["class_of_service"].as_str().unwrap_or_default()
                    )
                });
            }
            AccountCommand::Move { address, shard } => {
                let path = format!("/accounts/{}/move", encode(address));
                let moved = t.send(
                    t.request(Method::POST, &path)
                        .json(&json!({ "shard": shard })),
                )?;
                out(&moved, &|m| {
                    println!(
                        "moved {address} from shard {} to shard {shard}",
                        m["from"].as_u64().unwrap_or_default()
                    )
                });
            }
            AccountCommand::AppPassword(cmd) => app_password(&t, cmd, &out)?,
        },
        AdminCommand::Cos(cmd) => match cmd {
            CosCommand::Add {
                name,
                quota,
                max_message_size,
                disable,
                min_password_length,
            } => {
                let features: serde_json::Map<String, Value> = disable
                    .iter()
                    .map(|f| (f.key().to_string(), Value::Bool(false)))
                    .collect();
                let body = json!({
                    "name": name,
                    "quota_bytes": quota,
                    "max_message_size": max_message_size,
                    "features": features,
                    "min_password_length": min_password_length,
                });
                let c = t.send(t.request(Method::POST, "/classes").json(&body))?;
                out(&c, &|c| {
                    println!(
                        "added class of service {}",
                        c["name"].as_str().unwrap_or_default()
                    )
                });
            }
            CosCommand::List => {
                let page = t.send(t.request(Method::GET, "/classes"))?;
                let all = Value::from(page["items"].as_array().cloned().unwrap_or_default());
                out(&all, &|all| {
                    for c in all.as_array().into_iter().flatten() {
                        println!(
                            "{:<20} quota {:<12} {}",
                            c["name"].as_str().unwrap_or_default(),
                            c["quota_bytes"],
                            features(c).join(",")
                        );
                    }
                });
            }
            CosCommand::Show { name } => {
                let c = t.send(t.request(Method::GET, &format!("/classes/{}", encode(name))))?;
                out(&c, &print_class);
            }
            CosCommand::Delete { name } => {
                t.send(t.request(Method::DELETE, &format!("/classes/{}", encode(name))))?;
                out(&json!({ "deleted": name }), &|_| {
                    println!("deleted class of service {name}")
                });
            }
        },
        AdminCommand::ServiceAccount(cmd) => service_account(&t, cmd, &out)?,
        AdminCommand::Queue(cmd) => queue(&t, cmd, &out)?,
        AdminCommand::Audit {
            limit,
            action,
            target,
            actor,
        } => {
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            for (key, value) in [("action", action), ("target", target), ("actor", actor)] {
                if let Some(v) = value {
                    q.push((key, v.clone()));
                }
            }
            let page = t.send(t.request(Method::GET, "/audit").query(&q))?;
            out(&page, &|page| {
                for e in page["items"].as_array().into_iter().flatten() {
                    let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                    let mut line = format!(
                        "{}  {:<8} {:<22} {:<30} {}",
                        utc(e["unix_ms"].as_u64().unwrap_or(0) / 1000),
                        text("actor"),
                        text("action"),
                        text("target"),
                        text("detail")
                    );
                    if let Some(ip) = e["ip"].as_str() {
                        line.push_str(&format!(" from {ip}"));
                    }
                    if let Some(p) = e["protocol"].as_str() {
                        line.push_str(&format!(" ({p})"));
                    }
                    println!("{}", line.trim_end());
                }
            });
        }
        AdminCommand::List(cmd) => match cmd {
            ListCommand::Add {
                address,
                members,
                senders,
                hidden,
            } => {
                let body = json!({ "address": address, "members": members, "senders": senders, "hidden": hidden });
                let l = t.send(t.request(Method::POST, "/lists").json(&body))?;
                out(&l, &|l| {
                    let n = l["members"].as_array().map_or(0, Vec::len);
                    println!(
                        "added list {} with {n} members",
                        l["address"].as_str().unwrap_or_default()
                    );
                });
            }
            ListCommand::List { search } => {
                let all = Value::from(t.list_all("/lists", &search_query(search))?);
                out(&all, &|all| {
                    for l in all.as_array().into_iter().flatten() {
                        let members: Vec<&str> = l["members"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        println!(
                            "{:<40} {}",
                            l["address"].as_str().unwrap_or_default(),
                            members.join(", ")
                        );
                    }
                });
            }
            ListCommand::Delete { address } => {
                t.send(t.request(Method::DELETE, &format!("/lists/{}", encode(address))))?;
                out(&json!({ "deleted": address }), &|_| {
                    println!("deleted list {address}")
                });
            }
        },
    }
    Ok(())
}

/// Prints a reply: its JSON with `--json`, else the text the callback prints.
type Output<'a> = dyn Fn(&Value, &dyn Fn(&Value)) + 'a;

/// `cairn admin account app-password …`.
fn app_password(t: &Target, cmd: &AppPasswordCommand, out: &Output) -> Result<(), String> {
    match cmd {
        AppPasswordCommand::Add { address, name } => {
            let path = format!("/accounts/{}/app-passwords", encode(address));
            let p = t.send(
                t.request(Method::POST, &path)
                    .json(&json!({ "name": name })),
            )?;
            out(&p, &|p| {
                println!(
                    "app password {name} of {}: {}",
                    p["address"].as_str().unwrap_or_default(),
                    p["password"].as_str().unwrap_or_default()
                );
                println!("(shown only now: enter it in the mail client)");
            });
        }
        AppPasswordCommand::List { address } => {
            let path = format!("/accounts/{}/app-passwords", encode(address));
            let page = t.send(t.request(Method::GET, &path))?;
            let all = Value::from(page["items"].as_array().cloned().unwrap_or_default());
            out(&all, &|all| {
                for p in all.as_array().into_iter().flatten() {
                    println!(
                        "{:<30} created {}",
                        p["name"].as_str().unwrap_or_default(),
                        utc(p["created_unix"].as_u64().unwrap_or(0))
                    );
                }
            });
        }
        AppPasswordCommand::Delete { address, name } => {
            let path = format!(
                "/accounts/{}/app-passwords/{}",
                encode(address),
                encode(name)
            );
            t.send(t.request(Method::DELETE, &path))?;
            out(&json!({ "deleted": name, "address": address }), &|_| {
                println!("deleted app password {name} of {address}")
            });
        }
    }
    Ok(())
}

/// `cairn admin domain dkim …`: make a key (or show or remove the key)
/// and print the TXT record to publish, split into strings of at most 255
/// bytes as a zone file wants them.
fn dkim(
    t: &Target,
    name: &str,
    algorithm: Option<DkimAlgorithmArg>,
    selector: &Option<String>,
    show: bool,
    remove: bool,
    out: &Output,
) -> Result<(), String> {
    let path = format!("/domains/{}/dkim", encode(name));
    if remove {
        t.send(t.request(Method::DELETE, &path))?;
        out(&json!({ "removed": name }), &|_| {
            println!("removed the DKIM key of {name}: its mail is no longer signed");
            println!("(remove its TXT record from DNS once no mail signed with it is in transit)");
        });
        return Ok(());
    }
    let key = if show {
        t.send(t.request(Method::GET, &path))?
    } else {
        let mut body = serde_json::Map::new();
        if let Some(a) = algorithm {
            body.insert("algorithm".into(), a.key().into());
        }
        if let Some(s) = selector {
            body.insert("selector".into(), s.clone().into());
        }
        t.send(t.request(Method::POST, &path).json(&body))?
    };
    out(&key, &|k| {
        let text = |f: &str| k[f].as_str().unwrap_or_default().to_string();
        let line = cairn_smtp::dkim::zone_line_of(&text("record_name"), &text("record"));
        if show {
            println!(
                "{}: {} key, selector {}, made {}",
                text("domain"),
                text("algorithm"),
                text("selector"),
                utc(k["created"].as_u64().unwrap_or(0))
            );
            println!("Its TXT record:");
        } else {
            println!("Publish this TXT record:");
        }
        println!("{line}");
    });
    Ok(())
}

/// `cairn admin service-account …`.
fn service_account(t: &Target, cmd: &ServiceAccountCommand, out: &Output) -> Result<(), String> {
    match cmd {
        ServiceAccountCommand::Add {
            name,
            password,
            description,
        } => {
            let body = json!({
                "name": name,
                "password": read_password(password)?,
                "description": description,
            });
            let s = t.send(t.request(Method::POST, "/service-accounts").json(&body))?;
            out(&s, &|s| {
                println!(
                    "added service account {} (bind as cn={},ou=services,<domain base>)",
                    s["name"].as_str().unwrap_or_default(),
                    s["name"].as_str().unwrap_or_default()
                )
            });
        }
        ServiceAccountCommand::List => {
            let page = t.send(t.request(Method::GET, "/service-accounts"))?;
            let all = Value::from(page["items"].as_array().cloned().unwrap_or_default());
            out(&all, &|all| {
                for s in all.as_array().into_iter().flatten() {
                    println!(
                        "{:<30} created {}  {}",
                        s["name"].as_str().unwrap_or_default(),
                        utc(s["created_unix"].as_u64().unwrap_or(0)),
                        s["description"].as_str().unwrap_or_default()
                    );
                }
            });
        }
        ServiceAccountCommand::Delete { name } => {
            let path = format!("/service-accounts/{}", encode(name));
            t.send(t.request(Method::DELETE, &path))?;
            out(&json!({ "deleted": name }), &|_| {
                println!("deleted service account {name}")
            });
        }
    }
    Ok(())
}

/// `cairn admin queue …`.
fn queue(t: &Target, cmd: &QueueCommand, out: &Output) -> Result<(), String> {
    match cmd {
        QueueCommand::List => {
            let page = t.send(t.request(Method::GET, "/queue"))?;
            out(&page, &|page| {
                let items = page["items"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    println!("the queue is empty");
                }
                for m in &items {
                    let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                    let sender = text("sender");
                    println!(
                        "{:<10} {:>9} B  from <{}>  queued {}  next try {}  attempts {}",
                        text("id"),
                        m["size"].as_u64().unwrap_or(0),
                        sender,
                        utc(m["created"].as_u64().unwrap_or(0)),
                        utc(m["next_attempt"].as_u64().unwrap_or(0)),
                        m["attempts"].as_u64().unwrap_or(0)
                    );
                    for r in m["recipients"].as_array().into_iter().flatten() {
                        let state = r["state"].as_str().unwrap_or_default();
                        let reply = r["reply"].as_str().unwrap_or_default();
                        println!(
                            "    {:<9} {} {reply}",
                            state,
                            r["address"].as_str().unwrap_or_default()
                        );
                    }
                    if let Some(e) = m["last_error"].as_str() {
                        println!("    last error: {e}");
                    }
                }
            });
        }
        QueueCommand::Retry { id } => {
            let path = match id {
                Some(id) => format!("/queue/{}/retry", encode(id)),
                None => "/queue/retry".to_string(),
            };
            let r = t.send(t.request(Method::POST, &path))?;
            out(&r, &|r| {
                println!("retried {} message(s)", r["retried"].as_u64().unwrap_or(0))
            });
        }
        QueueCommand::Delete { id } => {
            t.send(t.request(Method::DELETE, &format!("/queue/{}", encode(id))))?;
            out(&json!({ "deleted": id }), &|_| {
                println!("deleted queued message {id} (no bounce sent)")
            });
        }
    }
    Ok(())
}

/// The query of a listing narrowed by `--search`.
fn search_query(search: &Option<String>) -> Vec<(&'static str, String)> {
    search.iter().map(|s| ("search", s.clone())).collect()
}
