//! etcd's Auth service, and who a client is.
//!
//! **Where tokens are verified.** A request's credential (etcd's `token` metadata) is taken
//! here, at the gRPC edge, and resolved to a user name and the auth revision the token was
//! issued at ([`kv::Caller`]) by the core task, against the simple tokens and auth tables this
//! member applied ([`resolve`]). A token the member does not know is refused with etcd's
//! "invalid auth token" while auth is on; while it is off, every credential is ignored, as
//! etcd ignores it.
//!
//! **Where permissions are checked.** Not here: the caller goes into the log with the command
//! ([`kv::encode_as`]) and every replica checks it at apply, against the tables as of the
//! command's slot; reads are checked when the member serves them ([`kv::KvStore::read_as`]).
//! See `kv`'s `auth/access.rs` for why that is safe.
//!
//! **Simple tokens** are drawn here (16 random letters from the OS, a dot and the auth
//! revision, etcd's shape) and go through the log in an Authenticate command, so every member
//! knows every token: a client may authenticate at one member and use its token at any other,
//! as with etcd. Passwords are checked and hashed here, off the core task (bcrypt costs tens
//! of milliseconds); a password is never proposed, stored or logged, only its bcrypt hash.

use crate::convert::status_from_auth_error;
use crate::service::{unexpected, Services};
use etcd_proto::authpb;
use etcd_proto::etcdserverpb as pb;
use kv::{
    AuthAnswer, AuthCommand, AuthError, AuthRead, Caller, KvCommand, KvRead, KvReadResponse,
    KvResponse, KvStore, Permission, PermissionType, UserPassword,
};
use rand_core::{OsRng, RngCore};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// What a client presented to say who it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credential {
    /// Nothing.
    #[default]
    None,
    /// A token from Authenticate, not yet looked at (a simple token, resolved by the core).
    Token(String),
    /// A JWT whose signature and expiry checked, with what it says.
    Jwt(crate::tokens::JwtIdentity),
    /// A token that is no JWT this member signed, or one that expired.
    BadJwt,
    /// No token, but a TLS client certificate (verified against `--trusted-ca-file`) whose
    /// common name is taken for the user, with `--client-cert-auth` (etcd's
    /// `AuthInfoFromTLS`).
    CommonName(String),
}

/// The metadata key etcd's clients send their token under (`rpctypes.TokenFieldNameGRPC`).
const TOKEN_KEY: &str = "token";
/// etcd 3.5's clients may send it here instead.
const AUTHORIZATION_KEY: &str = "authorization";
/// Most attempts at Authenticate when the auth tables keep moving under it (etcd loops until
/// the revision it checked at holds; a bound keeps a busy admin from stalling a client).
const AUTHENTICATE_ATTEMPTS_MAX: usize = 5;

tokio::task_local! {
    /// The credential of the client a Lock or Election call runs for: the recipes behind
    /// them make KV requests of their own, which are checked as that client's.
    static RECIPE_SENDER: Credential;
}

/// Runs `f` (a Lock or Election recipe) with the credential in `metadata` as the sender of
/// every KV request it makes, as etcd's lock and election services pass their caller's
/// context on to the KV calls they make.
pub(crate) async fn as_sender<F: std::future::Future>(metadata: &MetadataMap, f: F) -> F::Output {
    RECIPE_SENDER.scope(credential(metadata), f).await
}

/// The credential the running recipe acts for, to carry into a task it spawns.
pub(crate) fn recipe_sender() -> Credential {
    RECIPE_SENDER
        .try_with(Credential::clone)
        .unwrap_or_default()
}

/// Runs `f` as a recipe acting for `credential` (in a task a recipe spawned).
pub(crate) async fn with_recipe_sender<F: std::future::Future>(
    credential: Credential,
    f: F,
) -> F::Output {
    RECIPE_SENDER.scope(credential, f).await
}

/// The credential in a request's metadata.
pub fn credential(metadata: &MetadataMap) -> Credential {
    let token = metadata
        .get(TOKEN_KEY)
        .or_else(|| metadata.get(AUTHORIZATION_KEY))
        .and_then(|v| v.to_str().ok());
    match token {
        Some(t) if !t.is_empty() => Credential::Token(t.to_owned()),
        _ => Credential::None,
    }
}

/// Who sent a request with `credential`, as of the state applied in `store`; with `admin`,
/// also etcd's admin check (the `root` role). Runs on the core task: cheap, no bcrypt.
pub fn resolve(store: &KvStore, credential: &Credential, admin: bool) -> Result<Caller, AuthError> {
    let auth = store.auth();
    if !auth.is_enabled() {
        return Ok(Caller::anonymous());
    }
    let caller = match credential {
        Credential::None => Caller::anonymous(),
        Credential::Token(t) => match store.simple_tokens().get(t) {
            Some((user, revision)) => Caller::user(user, revision),
            None => return Err(AuthError::InvalidAuthToken),
        },
        Credential::Jwt(id) => Caller::user(id.user.clone(), id.auth_revision),
        Credential::BadJwt => return Err(AuthError::InvalidAuthToken),
        // As etcd: the certificate names the user, checked against the tables as they are.
        Credential::CommonName(user) => Caller {
            user: user.clone(),
            auth_revision: None,
        },
    };
    if admin {
        auth.check_caller_admin(&caller)?;
    }
    Ok(caller)
}

/// A fresh simple token's random part: 16 letters from the operating system's generator, as
/// etcd draws them (`genTokenPrefix`).
fn token_prefix() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| LETTERS[usize::from(*b) % LETTERS.len()] as char)
        .collect()
}

impl Services {
    /// The sender of `request`, resolved by the core ([`resolve`]); with `admin`, refused
    /// unless it may do admin operations.
    pub(crate) async fn caller<T>(
        &self,
        request: &Request<T>,
        admin: bool,
    ) -> Result<Caller, Status> {
        let mut credential = credential(request.metadata());
        if credential == Credential::None {
            // A recipe's own request: its client's credential, if it runs for one.
            if let Ok(c) = RECIPE_SENDER.try_with(Credential::clone) {
                credential = c;
            }
        }
        if credential == Credential::None && self.tokens().client_cert_users() {
            if let Some(cn) = request
                .extensions()
                .get::<crate::tls::ClientConnectInfo>()
                .and_then(|info| info.common_name.clone())
            {
                credential = Credential::CommonName(cn);
            }
        }
        if let Credential::Token(t) = &credential {
            if matches!(self.tokens().kind(), crate::tokens::TokenKind::Jwt(_)) {
                // Verified here, off the core task: it needs no replicated state.
                credential = match self.tokens().verify_jwt(t) {
                    Some(id) => Credential::Jwt(id),
                    None => Credential::BadJwt,
                };
            }
        }
        let simple_token = match &credential {
            Credential::Token(t) => Some(t.clone()),
            _ => None,
        };
        if credential == Credential::None && !admin {
            // Nothing to resolve: the store refuses a sender-less request itself while auth
            // is on, at apply or when serving, so this costs no trip to the core.
            return Ok(Caller::anonymous());
        }
        let caller = self
            .ask(|reply| crate::core::Request::Resolve {
                credential,
                admin,
                reply,
            })
            .await?
            .map_err(|e| status_from_auth_error(&e))?;
        if let Some(token) = simple_token {
            // A user only while auth is on: then the token's clock at this member decides.
            if !caller.user.is_empty() && !self.tokens().simple_used(&token) {
                return Err(status_from_auth_error(&AuthError::InvalidAuthToken));
            }
        }
        Ok(caller)
    }

    /// Proposes a client's auth command and answers the header of its answer.
    async fn auth_write(
        &self,
        caller: &Caller,
        cmd: AuthCommand,
    ) -> Result<pb::ResponseHeader, Status> {
        let (answer, term) = self.write_as(caller, &KvCommand::Auth(cmd)).await?;
        let KvResponse::Auth(answer) = answer else {
            return Err(unexpected("auth command"));
        };
        let r = answer.map_err(|e| status_from_auth_error(&e))?;
        Ok(self.header(r.revision, term))
    }

    /// A client's auth query, linearizable as etcd's are.
    /// Whether auth is on, as this member has applied it (the member's own read: no sender,
    /// no permission check).
    pub(crate) async fn auth_enabled(&self) -> Result<bool, Status> {
        let (answer, _) = self.read(KvRead::Auth(AuthRead::Status), false).await?;
        match answer {
            KvReadResponse::Auth(Ok(r)) => match r.answer {
                AuthAnswer::Status { enabled, .. } => Ok(enabled),
                _ => Err(unexpected("auth status")),
            },
            KvReadResponse::Auth(Err(e)) => Err(status_from_auth_error(&e)),
            _ => Err(unexpected("auth status")),
        }
    }

    async fn auth_read(
        &self,
        caller: &Caller,
        q: AuthRead,
    ) -> Result<(AuthAnswer, pb::ResponseHeader), Status> {
        let (answer, term) = self.read_as(caller, KvRead::Auth(q), true).await?;
        let KvReadResponse::Auth(answer) = answer else {
            return Err(unexpected("auth query"));
        };
        let r = answer.map_err(|e| status_from_auth_error(&e))?;
        Ok((r.answer, self.header(r.revision, term)))
    }

    /// bcrypt of `password` at this member's cost, off the core and the async workers.
    async fn hash(&self, password: String) -> Result<kv::PasswordHash, Status> {
        let cost = self.bcrypt_cost();
        tokio::task::spawn_blocking(move || kv::hash_password(&password, cost))
            .await
            .map_err(|_| Status::internal("synod: password hashing stopped"))?
            .map_err(|e| status_from_auth_error(&e))
    }

    /// etcd's Authenticate: the password checked against the hash read linearizably, then a
    /// token handed out through the log, at the auth revision the check held at.
    async fn authenticate_user(
        &self,
        name: String,
        password: String,
    ) -> Result<(String, pb::ResponseHeader), Status> {
        for _ in 0..AUTHENTICATE_ATTEMPTS_MAX {
            let q = KvRead::Auth(AuthRead::PasswordHash { name: name.clone() });
            let (answer, term) = self.read(q, true).await?;
            let KvReadResponse::Auth(answer) = answer else {
                return Err(unexpected("password query"));
            };
            let checked = answer.map_err(|e| status_from_auth_error(&e))?;
            let revision = checked.revision;
            let AuthAnswer::PasswordHash {
                hash,
                auth_revision,
            } = checked.answer
            else {
                return Err(unexpected("password query"));
            };
            let given = password.clone();
            let matches = tokio::task::spawn_blocking(move || kv::verify_password(&hash, &given))
                .await
                .map_err(|_| Status::internal("synod: password check stopped"))?;
            if !matches {
                return Err(status_from_auth_error(&AuthError::AuthFailed));
            }
            if let Some(signed) = self.tokens().sign_jwt(&name, auth_revision) {
                // A JWT needs nothing replicated: its claims name the auth revision the
                // password was checked at, linearizably, and every member verifies it alone.
                let token = signed.map_err(Status::internal)?;
                return Ok((token, self.header(revision, term)));
            }
            let token = format!("{}.{}", token_prefix(), auth_revision);
            let cmd = KvCommand::Auth(AuthCommand::Authenticate {
                name: name.clone(),
                token: token.clone(),
                checked_revision: auth_revision,
            });
            let (answer, term) = self.write(&cmd).await?;
            let KvResponse::Auth(answer) = answer else {
                return Err(unexpected("authenticate"));
            };
            match answer {
                Ok(r) => {
                    self.tokens().simple_issued(&token);
                    return Ok((token, self.header(r.revision, term)));
                }
                // The tables moved between the check and the slot: check again.
                Err(AuthError::AuthOldRevision) => continue,
                Err(e) => return Err(status_from_auth_error(&e)),
            }
        }
        Err(status_from_auth_error(&AuthError::AuthOldRevision))
    }
}

fn perm_type(t: i32) -> Result<PermissionType, Status> {
    match authpb::permission::Type::try_from(t) {
        Ok(authpb::permission::Type::Read) => Ok(PermissionType::Read),
        Ok(authpb::permission::Type::Write) => Ok(PermissionType::Write),
        Ok(authpb::permission::Type::Readwrite) => Ok(PermissionType::ReadWrite),
        Err(_) => Err(Status::invalid_argument(format!(
            "synod: unknown permission type {t}"
        ))),
    }
}

fn pb_perm(p: Permission) -> authpb::Permission {
    let t = match p.perm_type {
        PermissionType::Read => authpb::permission::Type::Read,
        PermissionType::Write => authpb::permission::Type::Write,
        PermissionType::ReadWrite => authpb::permission::Type::Readwrite,
    };
    authpb::Permission {
        perm_type: t as i32,
        key: p.key,
        range_end: p.range_end,
    }
}

#[tonic::async_trait]
impl pb::auth_server::Auth for Services {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let header = self.auth_write(&caller, AuthCommand::AuthEnable).await?;
        Ok(Response::new(pb::AuthEnableResponse {
            header: Some(header),
        }))
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let header = self.auth_write(&caller, AuthCommand::AuthDisable).await?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: Some(header),
        }))
    }

    async fn auth_status(
        &self,
        request: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let (answer, header) = self.auth_read(&caller, AuthRead::Status).await?;
        let AuthAnswer::Status {
            enabled,
            auth_revision,
        } = answer
        else {
            return Err(unexpected("auth status"));
        };
        Ok(Response::new(pb::AuthStatusResponse {
            header: Some(header),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let r = request.into_inner();
        let (token, header) = self.authenticate_user(r.name, r.password).await?;
        Ok(Response::new(pb::AuthenticateResponse {
            header: Some(header),
            token,
        }))
    }

    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let caller = self.caller(&request, true).await?;
        let r = request.into_inner();
        if r.name.is_empty() {
            return Err(status_from_auth_error(&AuthError::UserEmpty));
        }
        let no_password = r.options.is_some_and(|o| o.no_password);
        let password = if no_password {
            UserPassword::NoPassword
        } else if !r.hashed_password.is_empty() {
            let hash = kv::PasswordHash::parse(&r.hashed_password).ok_or_else(|| {
                Status::invalid_argument("synod: hashedPassword is not a bcrypt hash")
            })?;
            UserPassword::Hash(hash)
        } else {
            UserPassword::Hash(self.hash(r.password).await?)
        };
        let cmd = AuthCommand::UserAdd {
            name: r.name,
            password,
        };
        let header = self.auth_write(&caller, cmd).await?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: Some(header),
        }))
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let name = request.into_inner().name;
        let (answer, header) = self.auth_read(&caller, AuthRead::UserGet { name }).await?;
        let AuthAnswer::UserGet { roles } = answer else {
            return Err(unexpected("user get"));
        };
        Ok(Response::new(pb::AuthUserGetResponse {
            header: Some(header),
            roles,
        }))
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let (answer, header) = self.auth_read(&caller, AuthRead::UserList).await?;
        let AuthAnswer::UserList { users } = answer else {
            return Err(unexpected("user list"));
        };
        Ok(Response::new(pb::AuthUserListResponse {
            header: Some(header),
            users,
        }))
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let name = request.into_inner().name;
        let header = self
            .auth_write(&caller, AuthCommand::UserDelete { name })
            .await?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: Some(header),
        }))
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        // Checked before hashing, so that a refused caller costs no bcrypt.
        let caller = self.caller(&request, true).await?;
        let r = request.into_inner();
        let hash = if r.hashed_password.is_empty() {
            self.hash(r.password).await?
        } else {
            kv::PasswordHash::parse(&r.hashed_password).ok_or_else(|| {
                Status::invalid_argument("synod: hashedPassword is not a bcrypt hash")
            })?
        };
        let cmd = AuthCommand::UserChangePassword { name: r.name, hash };
        let header = self.auth_write(&caller, cmd).await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: Some(header),
        }))
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let r = request.into_inner();
        let cmd = AuthCommand::UserGrantRole {
            user: r.user,
            role: r.role,
        };
        let header = self.auth_write(&caller, cmd).await?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: Some(header),
        }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let r = request.into_inner();
        let cmd = AuthCommand::UserRevokeRole {
            user: r.name,
            role: r.role,
        };
        let header = self.auth_write(&caller, cmd).await?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: Some(header),
        }))
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let name = request.into_inner().name;
        let header = self
            .auth_write(&caller, AuthCommand::RoleAdd { name })
            .await?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: Some(header),
        }))
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let name = request.into_inner().role;
        let (answer, header) = self.auth_read(&caller, AuthRead::RoleGet { name }).await?;
        let AuthAnswer::RoleGet { perms } = answer else {
            return Err(unexpected("role get"));
        };
        Ok(Response::new(pb::AuthRoleGetResponse {
            header: Some(header),
            perm: perms.into_iter().map(pb_perm).collect(),
        }))
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let (answer, header) = self.auth_read(&caller, AuthRead::RoleList).await?;
        let AuthAnswer::RoleList { roles } = answer else {
            return Err(unexpected("role list"));
        };
        Ok(Response::new(pb::AuthRoleListResponse {
            header: Some(header),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let name = request.into_inner().role;
        let header = self
            .auth_write(&caller, AuthCommand::RoleDelete { name })
            .await?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: Some(header),
        }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let r = request.into_inner();
        let Some(p) = r.perm else {
            return Err(status_from_auth_error(&AuthError::PermissionNotGiven));
        };
        let perm = Permission {
            perm_type: perm_type(p.perm_type)?,
            key: p.key,
            range_end: p.range_end,
        };
        let cmd = AuthCommand::RoleGrantPermission { role: r.name, perm };
        let header = self.auth_write(&caller, cmd).await?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: Some(header),
        }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let r = request.into_inner();
        let cmd = AuthCommand::RoleRevokePermission {
            role: r.role,
            key: r.key,
            range_end: r.range_end,
        };
        let header = self.auth_write(&caller, cmd).await?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: Some(header),
        }))
    }
}
