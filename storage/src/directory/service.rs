//! The directory from any shard: the directory lives on one shard
//! ([`DIRECTORY_SHARD`]) and the others reach it through a cross-shard
//! call, so that every change is checked and committed in one place.

use std::net::IpAddr;
use std::rc::Rc;

use cairn_shards::mesh::{Mesh, MeshEndpoint, MeshError};
use cairn_shards::ShardId;

use super::audit::{AuditPage, AuditQuery};
use super::auth::{AuthError, Authenticator, Principal};
use super::dkim::DkimKey;
use super::service_accounts::ServiceAccount;
use super::sessions::Revoked;
use std::sync::Arc;

use super::{
    Account, AddressBook, AppPassword, ClassOfService, Directory, DirectoryError, Domain, Features,
    List, NewAccount, Recipient, Route, Status,
};

/// The shard that keeps the directory.
pub const DIRECTORY_SHARD: ShardId = 0;

/// A directory operation, as sent to the directory's shard.
#[derive(Debug, Clone)]
pub enum DirectoryRequest {
    AddDomain {
        name: String,
        alias_of: Option<String>,
        catch_all: Option<String>,
    },
    Domain(String),
    Domains {
        after: Option<String>,
        limit: usize,
        search: Option<String>,
    },
    DeleteDomain {
        name: String,
        force: bool,
    },
    AddAccount(NewAccount),
    Account(String),
    Accounts {
        after: Option<String>,
        limit: usize,
        search: Option<String>,
    },
    DeleteAccount(String),
    UpdateAccount {
        address: String,
        changes: AccountChanges,
    },
    Authenticate {
        user: String,
        password: String,
        ip: IpAddr,
        protocol: Option<String>,
    },
    AuthenticateService {
        name: String,
        password: String,
        ip: IpAddr,
        protocol: Option<String>,
    },
    /// `request`, with its changes audited as made by `actor`.
    Acting {
        actor: String,
        request: Box<DirectoryRequest>,
    },
    Audit(AuditQuery),
    AddServiceAccount(ServiceAccount),
    ServiceAccount(String),
    ServiceAccounts,
    DeleteServiceAccount(String),
    AccountsIn(String),
    AddAlias {
        alias: String,
        account: String,
    },
    AddList(List),
    Lists {
        after: Option<String>,
        limit: usize,
        search: Option<String>,
    },
    DeleteList(String),
    Resolve(String),
    Route(String),
    AddressBook,
    AddClass(ClassOfService),
    Class(String),
    Classes,
    UpdateClass {
        name: String,
        changes: ClassChanges,
    },
    DeleteClass(String),
    ClassOf(String),
    AddAppPassword {
        address: String,
        app: AppPassword,
    },
    AppPasswords(String),
    DeleteAppPassword {
        address: String,
        name: String,
    },
    SetDkimKey {
        domain: String,
        key: DkimKey,
    },
    DkimKey(String),
    RemoveDkimKey(String),
    RevokeSession(Revoked),
    SessionRevoked(String),
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    pub password_hash: Option<String>,
    pub status: Option<Status>,
    pub display_name: Option<String>,
    /// The name of an existing class of service.
    pub class_of_service: Option<String>,
}

/// Changes to a class of service; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ClassChanges {
    pub quota_bytes: Option<u64>,
    pub max_message_size: Option<u64>,
    pub min_password_length: Option<u32>,
    pub imap: Option<bool>,
    pub pop3: Option<bool>,
    pub activesync: Option<bool>,
    pub files: Option<bool>,
    pub chats: Option<bool>,
    pub video: Option<bool>,
}

impl AccountChanges {
    /// The audit action and detail of these changes (never the password).
    pub fn audit(&self) -> (&'static str, String) {
        let mut fields = Vec::new();
        if self.password_hash.is_some() {
            fields.push("password".to_string());
        }
        if let Some(status) = self.status {
            fields.push(format!("status {status:?}").to_lowercase());
        }
        if self.display_name.is_some() {
            fields.push("display name".to_string());
        }
        if let Some(class) = &self.class_of_service {
            fields.push(format!("class {class}"));
        }
        let action = match (&self.password_hash, self.status) {
            (Some(_), _) => "account.password",
            (None, Some(Status::Active)) => "account.unlock",
            (None, Some(Status::Locked | Status::Closed)) => "account.lock",
            (None, None) => "account.update",
        };
        (action, fields.join(", "))
    }
}

impl ClassChanges {
    /// Applies the changes to `class`.
    pub fn apply(self, class: &mut ClassOfService) {
        let set = |field: &mut bool, value: Option<bool>| {
            if let Some(v) = value {
                *field = v;
            }
        };
        let f: &mut Features = &mut class.features;
        set(&mut f.imap, self.imap);
        set(&mut f.pop3, self.pop3);
        set(&mut f.activesync, self.activesync);
        set(&mut f.files, self.files);
        set(&mut f.chats, self.chats);
        set(&mut f.video, self.video);
        if let Some(q) = self.quota_bytes {
            class.quota_bytes = q;
        }
        if let Some(m) = self.max_message_size {
            class.max_message_size = m;
        }
        if let Some(n) = self.min_password_length {
            class.min_password_length = n;
        }
    }
}

/// The directory shard's answer: the error travels as its message and kind.
#[derive(Debug)]
pub enum DirectoryReply {
    Domain(Result<Domain, DirectoryError>),
    MaybeDomain(Result<Option<Domain>, DirectoryError>),
    Domains(Result<Vec<Domain>, DirectoryError>),
    Account(Result<Option<Account>, DirectoryError>),
    NewAccount(Result<Account, DirectoryError>),
    Accounts(Result<Vec<Account>, DirectoryError>),
    Done(Result<(), DirectoryError>),
    Auth(Result<Principal, AuthError>),
    List(Result<List, DirectoryError>),
    Lists(Result<Vec<List>, DirectoryError>),
    Recipient(Result<Recipient, DirectoryError>),
    Route(Result<Route, DirectoryError>),
    AddressBook(Result<Arc<AddressBook>, DirectoryError>),
    Class(Result<ClassOfService, DirectoryError>),
    MaybeClass(Result<Option<ClassOfService>, DirectoryError>),
    Classes(Result<Vec<ClassOfService>, DirectoryError>),
    AppPassword(Result<AppPassword, DirectoryError>),
    AppPasswords(Result<Vec<AppPassword>, DirectoryError>),
    Service(Result<String, AuthError>),
    Audit(Result<AuditPage, DirectoryError>),
    ServiceAccount(Result<ServiceAccount, DirectoryError>),
    MaybeServiceAccount(Result<Option<ServiceAccount>, DirectoryError>),
    ServiceAccounts(Result<Vec<ServiceAccount>, DirectoryError>),
    DkimKey(Result<Option<DkimKey>, DirectoryError>),
    Revoked(bool),
}

/// The mesh that carries directory requests.
pub type DirectoryMesh = Mesh<DirectoryRequest, DirectoryReply>;

/// Why a directory call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("the directory shard did not answer: {0}")]
    Mesh(#[from] MeshError),
    #[error("the directory shard answered a different request")]
    Mismatch,
}

fn handle(
    dir: Directory,
    auth: Authenticator,
    req: DirectoryRequest,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = DirectoryReply>>> {
    Box::pin(handle_one(dir, auth, req))
}

async fn handle_one(dir: Directory, auth: Authenticator, req: DirectoryRequest) -> DirectoryReply {
    use DirectoryRequest as Q;
    match req {
        Q::Acting { actor, request } => handle(dir.acting(&actor), auth, *request).await,
        Q::Audit(query) => DirectoryReply::Audit(dir.audit(&query)),
        Q::AddServiceAccount(account) => {
            DirectoryReply::ServiceAccount(dir.add_service_account(account).await)
        }
        Q::ServiceAccount(name) => DirectoryReply::MaybeServiceAccount(dir.service_account(&name)),
        Q::ServiceAccounts => DirectoryReply::ServiceAccounts(dir.service_accounts()),
        Q::DeleteServiceAccount(name) => {
            DirectoryReply::Done(dir.delete_service_account(&name).await)
        }
        Q::AccountsIn(class) => DirectoryReply::Accounts(dir.accounts_in(&class)),
        Q::AuthenticateService {
            name,
            password,
            ip,
            protocol,
        } => DirectoryReply::Service(
            auth.authenticate_service(&name, &password, ip, protocol.as_deref())
                .await,
        ),
        Q::AddAlias { alias, account } => {
            DirectoryReply::Done(dir.add_alias(&alias, &account).await)
        }
        Q::AddList(list) => DirectoryReply::List(dir.add_list(list).await),
        Q::Lists {
            after,
            limit,
            search,
        } => DirectoryReply::Lists(dir.lists(after.as_deref(), limit, search.as_deref())),
        Q::DeleteList(address) => DirectoryReply::Done(dir.delete_list(&address).await),
        Q::Resolve(address) => DirectoryReply::Recipient(dir.resolve(&address)),
        Q::Route(address) => DirectoryReply::Route(dir.route(&address)),
        Q::AddressBook => DirectoryReply::AddressBook(dir.address_book()),
        Q::Authenticate {
            user,
            password,
            ip,
            protocol,
        } => DirectoryReply::Auth(
            auth.authenticate_via(&user, &password, ip, protocol.as_deref())
                .await,
        ),
        Q::AddDomain {
            name,
            alias_of,
            catch_all,
        } => DirectoryReply::Domain(
            dir.add_domain(&name, alias_of.as_deref(), catch_all.as_deref())
                .await,
        ),
        Q::Domain(name) => DirectoryReply::MaybeDomain(dir.domain(&name)),
        Q::Domains {
            after,
            limit,
            search,
        } => DirectoryReply::Domains(dir.domains(after.as_deref(), limit, search.as_deref())),
        Q::DeleteDomain { name, force } => {
            DirectoryReply::Done(dir.delete_domain(&name, force).await)
        }
        Q::AddAccount(new) => DirectoryReply::NewAccount(dir.add_account(new).await),
        Q::Account(address) => DirectoryReply::Account(dir.account(&address)),
        Q::Accounts {
            after,
            limit,
            search,
        } => DirectoryReply::Accounts(dir.accounts(after.as_deref(), limit, search.as_deref())),
        Q::DeleteAccount(address) => DirectoryReply::Done(dir.delete_account(&address).await),
        Q::UpdateAccount { address, changes } => {
            DirectoryReply::NewAccount(dir.change_account(&address, changes).await)
        }
        Q::AddClass(class) => DirectoryReply::Class(dir.add_class(class).await),
        Q::Class(name) => DirectoryReply::MaybeClass(dir.class(&name)),
        Q::Classes => DirectoryReply::Classes(dir.classes()),
        Q::UpdateClass { name, changes } => {
            DirectoryReply::Class(dir.update_class(&name, |c| changes.apply(c)).await)
        }
        Q::DeleteClass(name) => DirectoryReply::Done(dir.delete_class(&name).await),
        Q::ClassOf(address) => DirectoryReply::Class(dir.class_of(&address)),
        Q::AddAppPassword { address, app } => {
            DirectoryReply::AppPassword(dir.add_app_password(&address, app).await)
        }
        Q::AppPasswords(address) => DirectoryReply::AppPasswords(dir.app_passwords(&address)),
        Q::DeleteAppPassword { address, name } => {
            DirectoryReply::Done(dir.delete_app_password(&address, &name).await)
        }
        Q::SetDkimKey { domain, key } => DirectoryReply::Done(dir.set_dkim_key(&domain, key).await),
        Q::DkimKey(domain) => DirectoryReply::DkimKey(dir.dkim_key(&domain)),
        Q::RemoveDkimKey(domain) => DirectoryReply::Done(dir.remove_dkim_key(&domain).await),
        Q::RevokeSession(revoked) => DirectoryReply::Done(dir.revoke_session(revoked).await),
        Q::SessionRevoked(id) => DirectoryReply::Revoked(dir.session_revoked(&id)),
    }
}

/// The directory as seen from one shard. Cheap to clone.
#[derive(Clone)]
pub struct DirectoryService {
    endpoint: Rc<MeshEndpoint<DirectoryRequest, DirectoryReply>>,
    /// Who the changes sent through this handle are audited as.
    actor: Option<Rc<str>>,
}

impl DirectoryService {
    /// Joins the mesh as `shard`; the directory shard passes its
    /// directory and authenticator, and serves the others.
    pub async fn start(
        mesh: &DirectoryMesh,
        shard: ShardId,
        serving: Option<(Directory, Authenticator)>,
    ) -> Result<Self, MeshError> {
        let endpoint = mesh.join(shard).await?;
        if let Some((dir, auth)) = serving {
            endpoint.serve(move |_from, req| handle(dir.clone(), auth.clone(), req))?;
        }
        Ok(Self {
            endpoint: Rc::new(endpoint),
            actor: None,
        })
    }

    /// This handle, with the changes made through it audited as `actor`'s.
    pub fn acting(&self, actor: &str) -> Self {
        Self {
            endpoint: self.endpoint.clone(),
            actor: Some(actor.into()),
        }
    }

    pub(super) async fn call(&self, req: DirectoryRequest) -> Result<DirectoryReply, CallError> {
        let req = match &self.actor {
            Some(actor) => DirectoryRequest::Acting {
                actor: actor.to_string(),
                request: Box::new(req),
            },
            None => req,
        };
        Ok(self.endpoint.call(DIRECTORY_SHARD, req).await?)
    }

    /// Audit entries, newest first (see [`Directory::audit`]).
    pub async fn audit(&self, query: AuditQuery) -> Result<AuditPage, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::Audit(query)).await?,
            DirectoryReply::Audit,
            CallError::Mismatch
        )
    }

    /// Adds a service account (its password already hashed).
    pub async fn add_service_account(
        &self,
        account: ServiceAccount,
    ) -> Result<ServiceAccount, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::AddServiceAccount(account))
                .await?,
            DirectoryReply::ServiceAccount,
            CallError::Mismatch
        )
    }

    /// A service account by name (with its hash: never show it).
    pub async fn service_account(&self, name: String) -> Result<Option<ServiceAccount>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::ServiceAccount(name)).await?,
            DirectoryReply::MaybeServiceAccount,
            CallError::Mismatch
        )
    }

    /// Every service account (with hashes: never show them).
    pub async fn service_accounts(&self) -> Result<Vec<ServiceAccount>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::ServiceAccounts).await?,
            DirectoryReply::ServiceAccounts,
            CallError::Mismatch
        )
    }

    /// Deletes a service account.
    pub async fn delete_service_account(&self, name: String) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::DeleteServiceAccount(name))
                .await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }

    /// The accounts in a class of service (`default`: also those naming
    /// none), for applying its quota.
    pub async fn accounts_in(&self, class: String) -> Result<Vec<Account>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::AccountsIn(class)).await?,
            DirectoryReply::Accounts,
            CallError::Mismatch
        )
    }

    /// Checks a service account's password (on the directory's shard, with
    /// the lockout of logins); answers its name.
    pub async fn authenticate_service(
        &self,
        name: String,
        password: String,
        ip: IpAddr,
        protocol: Option<String>,
    ) -> Result<String, AuthError> {
        let req = DirectoryRequest::AuthenticateService {
            name,
            password,
            ip,
            protocol,
        };
        match self.call(req).await {
            Ok(DirectoryReply::Service(r)) => r,
            Ok(_) => Err(AuthError::Unavailable("mismatched reply".into())),
            Err(e) => Err(AuthError::Unavailable(e.to_string())),
        }
    }

    /// Adds a domain.
    pub async fn add_domain(
        &self,
        name: String,
        alias_of: Option<String>,
        catch_all: Option<String>,
    ) -> Result<Domain, CallError> {
        let req = DirectoryRequest::AddDomain {
            name,
            alias_of,
            catch_all,
        };
        expect_reply!(
            self.call(req).await?,
            DirectoryReply::Domain,
            CallError::Mismatch
        )
    }

    /// A domain by name.
    pub async fn domain(&self, name: String) -> Result<Option<Domain>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::Domain(name)).await?,
            DirectoryReply::MaybeDomain,
            CallError::Mismatch
        )
    }

    /// Lists domains.
    pub async fn domains(
        &self,
        after: Option<String>,
        limit: usize,
        search: Option<String>,
    ) -> Result<Vec<Domain>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::Domains {
                after,
                limit,
                search
            })
            .await?,
            DirectoryReply::Domains,
            CallError::Mismatch
        )
    }

    /// Deletes a domain.
    pub async fn delete_domain(&self, name: String, force: bool) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::DeleteDomain { name, force })
                .await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }

    /// Adds an account.
    pub async fn add_account(&self, new: NewAccount) -> Result<Account, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::AddAccount(new)).await?,
            DirectoryReply::NewAccount,
            CallError::Mismatch
        )
    }

    /// An account by address or alias.
    pub async fn account(&self, address: String) -> Result<Option<Account>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::Account(address)).await?,
            DirectoryReply::Account,
            CallError::Mismatch
        )
    }

    /// Lists accounts.
    pub async fn accounts(
        &self,
        after: Option<String>,
        limit: usize,
        search: Option<String>,
    ) -> Result<Vec<Account>, CallError> {
        let req = DirectoryRequest::Accounts {
            after,
            limit,
            search,
        };
        expect_reply!(
            self.call(req).await?,
            DirectoryReply::Accounts,
            CallError::Mismatch
        )
    }

    /// Changes an account.
    pub async fn update_account(
        &self,
        address: String,
        changes: AccountChanges,
    ) -> Result<Account, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::UpdateAccount { address, changes })
                .await?,
            DirectoryReply::NewAccount,
            CallError::Mismatch
        )
    }

    /// Where mail for `address` goes (see [`Directory::resolve`]).
    pub async fn resolve(&self, address: String) -> Result<Recipient, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::Resolve(address)).await?,
            DirectoryReply::Recipient,
            CallError::Mismatch
        )
    }

    /// What a mail server needs to know of `address`, in one call (see
    /// [`Directory::route`]).
    pub async fn route(&self, address: String) -> Result<Route, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::Route(address)).await?,
            DirectoryReply::Route,
            CallError::Mismatch
        )
    }

    /// The whole directory, read-only, as of now (see [`AddressBook`]).
    pub async fn address_book(&self) -> Result<Arc<AddressBook>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::AddressBook).await?,
            DirectoryReply::AddressBook,
            CallError::Mismatch
        )
    }

    /// Checks a login by a client of `protocol` (on the directory's
    /// shard, with its lockout; the protocol is kept in the audit trail).
    pub async fn authenticate_via(
        &self,
        user: String,
        password: String,
        ip: IpAddr,
        protocol: Option<String>,
    ) -> Result<Principal, AuthError> {
        let req = DirectoryRequest::Authenticate {
            user,
            password,
            ip,
            protocol,
        };
        match self.call(req).await {
            Ok(DirectoryReply::Auth(r)) => r,
            Ok(_) => Err(AuthError::Unavailable("mismatched reply".into())),
            Err(e) => Err(AuthError::Unavailable(e.to_string())),
        }
    }

    /// Adds another address to an account.
    pub async fn add_alias(&self, alias: String, account: String) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::AddAlias { alias, account })
                .await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }

    /// Adds a distribution list.
    pub async fn add_list(&self, list: List) -> Result<List, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::AddList(list)).await?,
            DirectoryReply::List,
            CallError::Mismatch
        )
    }

    /// Lists distribution lists.
    pub async fn lists(
        &self,
        after: Option<String>,
        limit: usize,
        search: Option<String>,
    ) -> Result<Vec<List>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::Lists {
                after,
                limit,
                search
            })
            .await?,
            DirectoryReply::Lists,
            CallError::Mismatch
        )
    }

    /// Deletes a distribution list.
    pub async fn delete_list(&self, address: String) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::DeleteList(address)).await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }

    /// Deletes an account.
    pub async fn delete_account(&self, address: String) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::DeleteAccount(address)).await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }

    /// Adds a class of service.
    pub async fn add_class(&self, class: ClassOfService) -> Result<ClassOfService, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::AddClass(class)).await?,
            DirectoryReply::Class,
            CallError::Mismatch
        )
    }

    /// A class of service by name (`default` always exists).
    pub async fn class(&self, name: String) -> Result<Option<ClassOfService>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::Class(name)).await?,
            DirectoryReply::MaybeClass,
            CallError::Mismatch
        )
    }

    /// Every class of service, `default` included.
    pub async fn classes(&self) -> Result<Vec<ClassOfService>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::Classes).await?,
            DirectoryReply::Classes,
            CallError::Mismatch
        )
    }

    /// Changes a class of service.
    pub async fn update_class(
        &self,
        name: String,
        changes: ClassChanges,
    ) -> Result<ClassOfService, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::UpdateClass { name, changes })
                .await?,
            DirectoryReply::Class,
            CallError::Mismatch
        )
    }

    /// Deletes a class of service that no account names.
    pub async fn delete_class(&self, name: String) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::DeleteClass(name)).await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }

    /// The class of service of the account `address` (or alias): the one
    /// it names, or `default`. Protocol servers check its features and
    /// message size.
    pub async fn class_of(&self, address: String) -> Result<ClassOfService, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::ClassOf(address)).await?,
            DirectoryReply::Class,
            CallError::Mismatch
        )
    }

    /// Adds an app password (already hashed) to an account.
    pub async fn add_app_password(
        &self,
        address: String,
        app: AppPassword,
    ) -> Result<AppPassword, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::AddAppPassword { address, app })
                .await?,
            DirectoryReply::AppPassword,
            CallError::Mismatch
        )
    }

    /// An account's app passwords (with their hashes: never show those).
    pub async fn app_passwords(&self, address: String) -> Result<Vec<AppPassword>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::AppPasswords(address)).await?,
            DirectoryReply::AppPasswords,
            CallError::Mismatch
        )
    }

    /// Deletes one of an account's app passwords.
    pub async fn delete_app_password(
        &self,
        address: String,
        name: String,
    ) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::DeleteAppPassword { address, name })
                .await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }

    /// Gives a served domain its DKIM key (made on the blocking pool by
    /// the caller), replacing any it had.
    pub async fn set_dkim_key(&self, domain: String, key: DkimKey) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::SetDkimKey { domain, key })
                .await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }

    /// A domain's DKIM key (with its private key: never show it).
    pub async fn dkim_key(&self, domain: String) -> Result<Option<DkimKey>, CallError> {
        expect_reply!(
            self.call(DirectoryRequest::DkimKey(domain)).await?,
            DirectoryReply::DkimKey,
            CallError::Mismatch
        )
    }

    /// Removes a domain's DKIM key.
    pub async fn remove_dkim_key(&self, domain: String) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::RemoveDkimKey(domain)).await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }
}
