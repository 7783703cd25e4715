//! `cairn run`: load and check the configuration, open the data directory,
//! make first-start material (certificate, admin credential), check every
//! listening address, start the shards, print what listens, and wait for
//! SIGTERM/SIGINT to stop gracefully.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use cairn_config::{Config, ConfigErrors, Service, TlsMode};
use cairn_http::Router;
use cairn_shards::metrics::{Metrics, ServiceMetrics, ShardSample};
use cairn_shards::{
    net, probe_bind, ConnectionTracker, Runtime, RuntimeConfig, ShardContext, Shutdown,
};
use cairn_storage::directory::lockout::Policy;
use cairn_storage::metrics::{AuthMetrics, BayesMetrics, StorageMetrics};
use cairn_storage::services::{Meshes, Services};
use cairn_storage::shard_store::{shards_on_disk, ShardStore};
use cairn_storage::DataDir;

use crate::api::{Api, Auth};
use crate::checkpoints::Checkpoints;
use crate::cli::RunArgs;
use crate::http_service;
use crate::listeners::{self, Listener, Server};
use crate::{admin_credential, logging, tls};
use cairn_imap::{ImapMesh, ImapOptions, ImapServer};
use cairn_ldap::{LdapOptions, LdapServer};
use cairn_media::metrics::MediaMetrics;
use cairn_media::service::{MediaMesh, MediaService};
use cairn_pop3::{Pop3Mesh, Pop3Options, Pop3Server};
use cairn_smtp::outbound::{OutboundMetrics, OutboundOptions, Runner};
use cairn_smtp::rate::SenderRate;
use cairn_smtp::{Mode, SmtpOptions, SmtpServer};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// An address may fail this many times more than one account may.
const AUTH_FAILURES_PER_ADDRESS: u32 = 5;
/// Failed logins are counted over this window, and lock out for its rest.
const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Sessions queued from one shard to another while they move.
const MOVE_QUEUE: usize = 64;
/// How long the shards may take to bind their listeners.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping shard waits for the digests still being made
/// before it closes its log.
const DIGESTS_AT_STOP: Duration = Duration::from_secs(10);

/// Runs the appliance until it is stopped; exit 0 after a clean stop.
pub fn run(args: RunArgs) -> ExitCode {
    match run_until_stopped(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cairn: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One listener the shards will open.
#[derive(Clone)]
struct Planned {
    service: Service,
    addr: SocketAddr,
    tls: TlsMode,
}

/// The services this build serves; a configured listener of another service
/// is reported and not opened (no placeholder servers).
fn is_built(service: Service) -> bool {
    matches!(
        service,
        Service::Http
            | Service::Https
            | Service::Smtp
            | Service::Submission
            | Service::Smtps
            | Service::Imap
            | Service::Imaps
            | Service::Pop3
            | Service::Pop3s
            | Service::Ldap
            | Service::Ldaps
    )
}

fn load_config(args: &RunArgs) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| format!("invalid configuration:\n{e}"))?,
        None => Config::embedded_default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(format!(
            "invalid configuration:\n{}",
            ConfigErrors(problems)
        ));
    }
    Ok(config)
}

fn plan_listeners(config: &Config) -> Result<(Vec<Planned>, Vec<&'static str>), String> {
    let mut planned = Vec::new();
    let mut not_built = Vec::new();
    for (service, listener) in &config.listeners {
        if !listener.enabled {
            continue;
        }
        if !is_built(*service) {
            not_built.push(service.name());
            continue;
        }
        if listener.tls == TlsMode::Starttls && !service.has_starttls() {
            return Err(format!(
                "listeners.{}.tls: HTTP has no STARTTLS; use \"none\" or \"implicit\"",
                service.name()
            ));
        }
        let addr = SocketAddr::new(listener.address, listener.port);
        probe_bind(addr).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "the port is already in use".to_string()
            } else {
                e.to_string()
            };
            format!("cannot listen for {} on {addr}: {why}", service.name())
        })?;
        planned.push(Planned {
            service: *service,
            addr,
            tls: listener.tls,
        });
    }
    Ok((planned, not_built))
}

fn run_until_stopped(args: RunArgs) -> Result<(), String> {
    let mut config = load_config(&args)?;
    logging::init(&config.log);
    let data_dir = DataDir::open(&config.data_dir).map_err(|e| e.to_string())?;
    // Every path below the data directory is absolute from here on.
    config.data_dir = data_dir.path().to_path_buf();
    let identity = tls::load_or_generate(&config, &data_dir)?;
    let tls = TlsConfigs {
        https: identity.server_config(&[b"http/1.1"])?,
        other: identity.server_config(&[])?,
    };
    let new_password = admin_credential::ensure(&data_dir)?;
    crate::api::sessions::init_key(&data_dir)?;
    let credentials = Arc::new(admin_credential::load(&data_dir)?);
    let (planned, not_built) = plan_listeners(&config)?;

    let runtime_config = RuntimeConfig {
        shards: config.shards.count,
        pin: config.shards.pin,
        blocking_threads: config.shards.blocking_threads,
        ..RuntimeConfig::default()
    };
    let shards = runtime_config.shard_count();
    let on_disk = shards_on_disk(data_dir.path());
    if on_disk > shards {
        return Err(format!(
            "the data directory {} holds {on_disk} shards but {shards} are configured; \
             run with shards.count = {on_disk}: fewer shards are not supported yet (even once \
             the accounts are moved off the last shards with `cairn admin account move`, \
             their queues and default placements stay there)",
            data_dir.path().display()
        ));
    }
    let metrics = Metrics::new(shards, VERSION);
    let antivirus = cairn_smtp::antivirus::load_antivirus(data_dir.path())
        .map_err(|e| format!("anti-virus database: {e}"))?;
    antivirus.register_metrics(&metrics);
    let (clamd, virus_action) = crate::outbound::antivirus(&config)?;
    if let Some(clamd) = &clamd {
        clamd.register_metrics(&metrics);
    }
    let outbound_metrics = Arc::new(OutboundMetrics::new());
    outbound_metrics.register(&metrics);
    let resolver = crate::outbound::resolver(&config)?;
    let outbound = crate::outbound::options(&config, resolver, outbound_metrics)?;
    let storage_metrics = Arc::new(StorageMetrics::new(&metrics));
    let meshes = Meshes::new(shards)
        .with_shards_on_disk(on_disk)
        .with_auth_metrics(AuthMetrics::new(&metrics))
        .with_bayes_metrics(BayesMetrics::new(&metrics));
    // The meshes that carry IMAP and POP3 sessions to their account's shard.
    let imap_mesh = ImapMesh::new(shards, MOVE_QUEUE);
    let pop3_mesh = Pop3Mesh::new(shards, MOVE_QUEUE);
    crate::media::check_range(&config, shards)?;
    let media_mesh = MediaMesh::new(shards, MOVE_QUEUE);
    let media_metrics = Arc::new(MediaMetrics::default());
    media_metrics.register(&metrics);
    let shutdown = Shutdown::new();
    shutdown
        .on_signals()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let shard_main = ShardMain {
        planned: planned.clone(),
        tls,
        metrics,
        storage_metrics,
        meshes,
        imap_mesh,
        pop3_mesh,
        media_mesh,
        media_metrics,
        antivirus,
        clamd,
        virus_action,
        outbound,
        relay_networks: crate::outbound::relay_networks(&config)?,
        credentials,
        auth_policy: Policy {
            per_account: config.limits.max_auth_failures,
            per_address: config
                .limits
                .max_auth_failures
                .saturating_mul(AUTH_FAILURES_PER_ADDRESS),
            window: AUTH_FAILURE_WINDOW,
        },
        max_body: config.limits.max_request_body as usize,
        data_dir: data_dir.path().to_path_buf(),
        ready: ready_tx,
        metrics_path: config.metrics.enabled.then(|| config.metrics.path.clone()),
        grace: Duration::from_secs(config.shards.shutdown_grace_secs),
        config: Arc::new(config.clone()),
    };
    let runtime = Runtime::start(&runtime_config, shutdown.clone(), move |ctx| {
        shard_main.clone().run(ctx)
    })
    .map_err(|e| e.to_string())?;

    for _ in 0..shards {
        let outcome = ready_rx
            .recv_timeout(START_TIMEOUT)
            .unwrap_or_else(|_| Err("the shards did not start in time".to_string()));
        if let Err(message) = outcome {
            shutdown.trigger();
            let _ = runtime.join();
            return Err(message);
        }
    }
    print_banner(
        &config,
        shards,
        &planned,
        &not_built,
        new_password.as_deref(),
    );
    runtime.join().map_err(|e| e.to_string())?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The TLS settings of the listeners: HTTPS offers HTTP/1.1 by ALPN, the
/// mail and directory protocols offer nothing.
#[derive(Clone)]
struct TlsConfigs {
    https: Arc<rustls::ServerConfig>,
    other: Arc<rustls::ServerConfig>,
}

/// What a shard's listeners share: the HTTP router, the mail-access
/// servers (see [`ShardMain::mail_access`]) and the SMTP sending limits.
struct Shared {
    router: Rc<Router>,
    imap: Option<ImapServer>,
    pop3: Option<Pop3Server>,
    /// Messages per client address per minute on the MX listener.
    mx_rate: Rc<SenderRate>,
    /// Messages per logged-in user per minute on submission.
    submission_rate: Rc<SenderRate>,
    /// The shard's resolver for the SMTP listeners' checks.
    resolver: cairn_dns::Resolver,
}

/// What each shard runs: bind, serve, and drain on shutdown.
#[derive(Clone)]
struct ShardMain {
    planned: Vec<Planned>,
    tls: TlsConfigs,
    metrics: Arc<Metrics>,
    storage_metrics: Arc<StorageMetrics>,
    meshes: Meshes,
    imap_mesh: ImapMesh,
    pop3_mesh: Pop3Mesh,
    media_mesh: MediaMesh,
    media_metrics: Arc<MediaMetrics>,
    antivirus: Arc<cairn_smtp::antivirus::Antivirus>,
    clamd: Option<Arc<cairn_smtp::antivirus::clamd::Clamd>>,
    virus_action: cairn_smtp::antivirus::VirusAction,
    outbound: OutboundOptions,
    relay_networks: Vec<ipnet::IpNet>,
    credentials: Arc<admin_credential::Credentials>,
    auth_policy: Policy,
    max_body: usize,
    data_dir: std::path::PathBuf,
    ready: mpsc::Sender<Result<(), String>>,
    metrics_path: Option<String>,
    grace: Duration,
    config: Arc<Config>,
}

impl ShardMain {
    /// The admin API of this shard.
    fn api(&self, services: Services, media: MediaService) -> Rc<Api> {
        let creds = &self.credentials;
        Rc::new(Api {
            services,
            media,
            auth: Auth::new(
                creds.token.clone(),
                creds.user.clone(),
                creds.password_hash.clone(),
            ),
            max_body: self.max_body,
        })
    }

    /// The server behind one of this shard's listeners; `None` for a
    /// service this build does not serve (`plan_listeners` leaves those
    /// out).
    fn server(
        &self,
        p: &Planned,
        ctx: &ShardContext,
        services: &Services,
        shared: &Shared,
        metrics: ServiceMetrics,
    ) -> Option<Server> {
        let limits = &self.config.limits;
        // STARTTLS is offered where the listener says so; an implicit
        // TLS listener hands the server an encrypted stream already.
        let starttls = (p.tls == TlsMode::Starttls).then(|| self.tls.other.clone());
        let server = match p.service {
            Service::Http | Service::Https => http_service::server(
                shared.router.clone(),
                ctx,
                self.metrics.clone(),
                metrics,
                limits.max_line_length,
            ),
            Service::Ldap | Service::Ldaps => {
                let options = LdapOptions {
                    allow_anonymous: self.config.ldap.allow_anonymous,
                    default_size_limit: self.config.ldap.size_limit,
                    ..LdapOptions::default()
                };
                Server::Ldap(LdapServer::new(
                    services.clone(),
                    starttls,
                    options,
                    metrics,
                ))
            }
            Service::Smtp | Service::Submission | Service::Smtps => {
                let (mode, rate) = if p.service == Service::Smtp {
                    (Mode::Mx, &shared.mx_rate)
                } else {
                    (Mode::Submission, &shared.submission_rate)
                };
                let options = SmtpOptions {
                    hostname: self.config.node.hostname.clone(),
                    max_message_size: limits.max_message_size,
                    max_recipients: limits.max_recipients as usize,
                    max_line_length: limits.max_line_length,
                    antivirus: Some(self.antivirus.clone()),
                    clamd: self.clamd.clone(),
                    virus_action: self.virus_action.clone(),
                    relay_networks: self.relay_networks.clone(),
                    spam: crate::outbound::spam(&self.config),
                    verify_senders: self.config.antispam.verify_senders,
                    enforce_dmarc: self.config.antispam.enforce_dmarc,
                    ..SmtpOptions::default()
                };
                Server::Smtp(
                    SmtpServer::new(services.clone(), mode, starttls, options, metrics)
                        .with_sender_rate(rate.clone())
                        .with_shutdown(ctx.shutdown().clone())
                        .with_resolver(shared.resolver.clone()),
                )
            }
            Service::Imap | Service::Imaps => Server::Imap(shared.imap.clone()?),
            Service::Pop3 | Service::Pop3s => Server::Pop3(shared.pop3.clone()?),
        };
        Some(server)
    }

    /// This shard's IMAP and POP3 servers, one each for the plain and the
    /// implicit-TLS listener, when either is configured: every shard joins
    /// the protocol's mesh, since sessions move to their account's shard.
    async fn mail_access(
        &self,
        ctx: &ShardContext,
        services: &Services,
        tracker: &ConnectionTracker,
    ) -> Result<(Option<ImapServer>, Option<Pop3Server>), String> {
        let has = |a: Service, b: Service| {
            self.planned
                .iter()
                .any(|p| p.service == a || p.service == b)
        };
        let (limits, access) = (&self.config.limits, &self.config.mail_access);
        let tls = Some(self.tls.other.clone());
        let imap = if has(Service::Imap, Service::Imaps) {
            let options = ImapOptions {
                hostname: self.config.node.hostname.clone(),
                max_literal: limits.max_message_size,
                allow_plaintext_auth: access.allow_plaintext_auth,
                ..ImapOptions::default()
            };
            let metrics = self.metrics.service("imap", ctx.id());
            let server = ImapServer::start(
                services.clone(),
                tls.clone(),
                options,
                metrics,
                &self.imap_mesh,
            );
            Some(
                server
                    .await
                    .map_err(|e| format!("shard {}: IMAP: {e}", ctx.id()))?
                    .with_shutdown(ctx.shutdown().clone(), tracker.clone()),
            )
        } else {
            None
        };
        let pop3 = if has(Service::Pop3, Service::Pop3s) {
            let options = Pop3Options {
                hostname: self.config.node.hostname.clone(),
                allow_plaintext_auth: access.allow_plaintext_auth,
                ..Pop3Options::default()
            };
            let metrics = self.metrics.service("pop3", ctx.id());
            let server =
                Pop3Server::start(services.clone(), tls, options, metrics, &self.pop3_mesh);
            Some(
                server
                    .await
                    .map_err(|e| format!("shard {}: POP3: {e}", ctx.id()))?
                    .with_shutdown(ctx.shutdown().clone(), tracker.clone()),
            )
        } else {
            None
        };
        Ok((imap, pop3))
    }

    async fn run(self, ctx: ShardContext) {
        let log = crate::checkpoints::log_config(&self.config.storage);
        let (store, replayed) = match ShardStore::open_with(&self.data_dir, ctx.id(), log).await {
            Ok((store, report)) => {
                self.storage_metrics.recovered(ctx.id(), &report);
                tracing::info!(
                    shard = ctx.id(),
                    records = report.records,
                    damaged = report.damaged.len(),
                    torn_tail = report.torn_tail.is_some(),
                    checkpoint = ?report.checkpoint,
                    "storage recovered"
                );
                store
                    .mail
                    .digest_with(cairn_imap::DIGESTER, ctx.blocking().clone());
                (store, report.records)
            }
            Err(e) => {
                let _ = self.ready.send(Err(format!(
                    "shard {}: cannot open its storage: {e}",
                    ctx.id()
                )));
                return;
            }
        };
        let mut bound = Vec::new();
        for p in &self.planned {
            match net::bind_tcp(p.addr) {
                Ok(listener) => bound.push((p, listener)),
                Err(e) => {
                    let _ = self.ready.send(Err(format!(
                        "cannot listen for {} on {} (shard {}): {e}",
                        p.service.name(),
                        p.addr,
                        ctx.id()
                    )));
                    store.log.close().await;
                    return;
                }
            }
        }
        let services = match Services::start(&ctx, &store, &self.meshes, self.auth_policy).await {
            Ok(services) => services,
            Err(e) => {
                let _ = self.ready.send(Err(format!(
                    "shard {}: cannot join the cross-shard services: {e}",
                    ctx.id()
                )));
                store.log.close().await;
                return;
            }
        };
        let media = crate::media::start(
            &ctx,
            &self.config,
            &self.media_mesh,
            &self.data_dir,
            self.media_metrics.clone(),
        );
        let (media, media_driver) = match media.await {
            Ok(started) => started,
            Err(message) => {
                let _ = self.ready.send(Err(message));
                store.log.close().await;
                return;
            }
        };
        let tracker = ConnectionTracker::default();
        let (imap, pop3) = match self.mail_access(&ctx, &services, &tracker).await {
            Ok(access) => access,
            Err(message) => {
                let _ = self.ready.send(Err(message));
                store.log.close().await;
                return;
            }
        };
        let limits = &self.config.limits;
        let shared = Shared {
            router: Rc::new(http_service::router(
                self.metrics.clone(),
                self.metrics_path.as_deref(),
                &ctx,
                self.api(services.clone(), media),
            )),
            imap,
            pop3,
            mx_rate: Rc::new(SenderRate::new(limits.max_messages_per_ip_per_minute)),
            submission_rate: Rc::new(SenderRate::new(limits.max_messages_per_user_per_minute)),
            resolver: cairn_dns::Resolver::new(self.outbound.resolver.clone()),
        };
        for (p, listener) in bound {
            let metrics = self.metrics.service(p.service.name(), ctx.id());
            let Some(server) = self.server(p, &ctx, &services, &shared, metrics.clone()) else {
                continue;
            };
            let tls = (p.tls == TlsMode::Implicit).then(|| match p.service {
                Service::Https => self.tls.https.clone(),
                _ => self.tls.other.clone(),
            });
            let listener = Listener {
                service: p.service.name(),
                listener,
                tls,
                server: Rc::new(server),
            };
            cairn_shards::spawn_detached(listeners::accept_loop(
                listener,
                ctx.clone(),
                metrics,
                tracker.clone(),
                self.config.limits.max_connections_per_ip,
            ));
        }
        let (metrics, storage_metrics, log, mail, id) = (
            self.metrics.clone(),
            self.storage_metrics.clone(),
            store.log.clone(),
            store.mail.clone(),
            ctx.id(),
        );
        cairn_shards::spawn_detached(async move {
            let mut last = ShardSample::default();
            let mut last_log = Default::default();
            let mut last_reads = Default::default();
            loop {
                metrics.sample_shard(id, &mut last);
                storage_metrics.sample(id, log.stats(), &mut last_log);
                storage_metrics.sample_reads(id, mail.reads(), &mut last_reads);
                cairn_shards::time::sleep(Duration::from_secs(1)).await;
            }
        });
        if ctx.id() == 0 {
            // Picks up `cairn avdb update` without a restart.
            cairn_shards::spawn_detached(cairn_smtp::avdb_watch::run(
                self.antivirus.clone(),
                self.data_dir.clone(),
                ctx.blocking().clone(),
                cairn_smtp::avdb_watch::PERIOD,
            ));
        }
        match Runner::new(services.clone(), self.outbound.clone()) {
            Ok(runner) => cairn_shards::spawn_detached(runner.run(ctx.shutdown().clone())),
            Err(e) => {
                let _ = self.ready.send(Err(format!(
                    "shard {}: cannot start the outbound queue: {e}",
                    ctx.id()
                )));
                store.log.close().await;
                return;
            }
        }
        let checkpoints = Checkpoints::new(store.clone(), ctx.id(), replayed, &self.config.storage);
        cairn_shards::spawn_detached(checkpoints.clone().run(ctx.clone()));
        let _ = self.ready.send(Ok(()));
        ctx.shutdown().wait().await;
        media_driver.await;
        let left = tracker.drain(self.grace).await;
        if left > 0 {
            tracing::warn!(
                shard = id,
                left,
                "closing connections still open at the deadline"
            );
        }
        // Digests still being made are written before the log closes (a
        // digest missed is only a parse at the first read).
        if cairn_shards::time::timeout(DIGESTS_AT_STOP, store.mail.digests_settled())
            .await
            .is_err()
        {
            tracing::warn!(
                shard = id,
                left = store.mail.digests_in_flight(),
                "closing the log with digests still being made"
            );
        }
        checkpoints.at_stop().await;
        store.log.close().await;
    }
}

fn print_banner(
    config: &Config,
    shards: usize,
    planned: &[Planned],
    not_built: &[&str],
    new_password: Option<&str>,
) {
    println!(
        "Cairn {VERSION} running on {shards} shard(s); data in {}",
        config.data_dir.display()
    );
    for p in planned {
        println!(
            "  listening  {:<11} {:<22} tls={:<9} {}://{}/",
            p.service.name(),
            p.addr,
            tls_name(p.tls),
            scheme(p),
            p.addr
        );
    }
    println!(
        "  media      udp {}..={} (one port per shard; rooms: POST {{http}}/api/v1/rooms)",
        crate::media::socket_addr(config, 0),
        crate::media::socket_addr(config, shards - 1).port()
    );
    if !not_built.is_empty() {
        println!(
            "  not started (no server in this build yet): {}",
            not_built.join(", ")
        );
    }
    let find = |service: Service| planned.iter().find(|p| p.service == service);
    if let Some(p) = find(Service::Http).or_else(|| find(Service::Https)) {
        let base = format!("{}://{}", scheme(p), p.addr);
        println!("  health: {base}/healthz");
        if config.metrics.enabled {
            println!("  metrics: {base}{}", config.metrics.path);
        }
        println!(
            "  admin API: {base}/api/v1/ (Bearer token in {}, or Basic auth as the admin)",
            config.data_dir.join(admin_credential::TOKEN_FILE).display()
        );
        println!("  add a domain and an account: cairn admin domain add example.org; cairn admin account add alice@example.org --password-stdin");
    }
    if let Some(p) = find(Service::Submission) {
        println!(
            "  send mail: swaks --server {} --port {} --tls --auth PLAIN --auth-user alice@example.org --from alice@example.org --to bob@example.org",
            p.addr.ip(),
            p.addr.port()
        );
    }
    if let Some(p) = find(Service::Imap) {
        println!(
            "  read mail: curl --ssl-reqd -k -u alice@example.org imap://{}/INBOX -X 'FETCH 1:* (FLAGS ENVELOPE)' (or any IMAP client; POP3 on {})",
            p.addr,
            find(Service::Pop3).map_or("-".to_string(), |p| p.addr.to_string())
        );
    }
    if let Some(p) = find(Service::Ldap) {
        println!(
            "  search the directory: ldapsearch -x -H ldap://{} -D uid=alice,ou=people,dc=example,dc=org -W -b dc=example,dc=org '(mail=*)'",
            p.addr
        );
    }
    let file = config.data_dir.join(admin_credential::FILE);
    match new_password {
        Some(password) => println!(
            "First start: log in as user \"{}\" with password \"{password}\"\n  (shown only now; kept hashed in {})",
            admin_credential::USER,
            file.display()
        ),
        None => println!(
            "Log in as user \"{}\" with the password printed at first start (hashed in {})",
            admin_credential::USER,
            file.display()
        ),
    }
    println!("Stop with Ctrl-C or SIGTERM.");
}

/// The URL scheme of a listener.
fn scheme(p: &Planned) -> &'static str {
    match p.service {
        Service::Http => "http",
        Service::Https => "https",
        Service::Smtp | Service::Submission => "smtp",
        Service::Smtps => "smtps",
        Service::Ldap => "ldap",
        Service::Ldaps => "ldaps",
        Service::Imap => "imap",
        Service::Imaps => "imaps",
        Service::Pop3 => "pop",
        Service::Pop3s => "pops",
    }
}

fn tls_name(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::None => "none",
        TlsMode::Starttls => "starttls",
        TlsMode::Implicit => "implicit",
    }
}
