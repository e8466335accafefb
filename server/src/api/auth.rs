//! The `CofferAuth` gRPC service: log in, refresh, log out, who am I,
//! short-lived download links for browsers, and app passwords.

use super::guard::{caller, peer};
use crate::auth::{tokens, Auth, Tokens};
use crate::files::Files;
use coffer_proto::pb::coffer_auth_server::CofferAuth;
use coffer_proto::pb::*;
use tonic::{Request, Response, Status};

pub struct AuthApi {
    auth: Auth,
    files: Files,
}

impl AuthApi {
    pub fn new(auth: Auth, files: Files) -> Self {
        Self { auth, files }
    }
}

fn app_password(a: crate::meta::AppPasswordRow) -> AppPassword {
    AppPassword {
        name: a.name,
        created_at: a.created_at,
    }
}

fn login_response(t: Tokens) -> LoginResponse {
    LoginResponse {
        access_token: t.access,
        expires_at: tokens::rfc3339(t.access_expires),
        refresh_token: t.refresh,
        refresh_expires_at: t.refresh_expires,
        username: t.user.name,
        role: t.user.role.as_str().to_string(),
    }
}

#[tonic::async_trait]
impl CofferAuth for AuthApi {
    async fn login(&self, req: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let addr = peer(&req);
        let r = req.into_inner();
        let t = self.auth.login(&r.username, &r.password, addr).await?;
        Ok(Response::new(login_response(t)))
    }

    async fn refresh(
        &self,
        req: Request<RefreshRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let t = self.auth.refresh(&req.into_inner().refresh_token).await?;
        Ok(Response::new(login_response(t)))
    }

    async fn logout(
        &self,
        req: Request<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, Status> {
        let who = caller(&req)?;
        self.auth
            .logout(&who, &req.into_inner().refresh_token)
            .await?;
        Ok(Response::new(LogoutResponse {}))
    }

    async fn who_am_i(
        &self,
        req: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let who = caller(&req)?;
        let usage = self.files.usage(&who).await?;
        Ok(Response::new(WhoAmIResponse {
            username: who.name,
            role: who.role.as_str().to_string(),
            auth_disabled: !self.auth.enabled(),
            used_bytes: usage.used,
            quota_bytes: usage.quota.unwrap_or(0),
        }))
    }

    async fn download_link(
        &self,
        req: Request<DownloadLinkRequest>,
    ) -> Result<Response<DownloadLinkResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let version = (r.version != 0).then_some(r.version);
        // Only files the caller can read get a link; the link names the
        // stored path, as `/download/` will look it up.
        let (v, _) = self.files.open(&who, &r.file_name, version).await?;
        let (route, ttl) = if r.inline {
            ("view", crate::auth::VIEW_TICKET_TTL)
        } else {
            ("download", crate::auth::TICKET_TTL)
        };
        let (ticket, exp) = self.auth.ticket(&who, &v.path, r.version, ttl);
        let mut url = format!("/{route}/{}?", super::http::path_encode(&v.path));
        if r.version != 0 {
            url.push_str(&format!("version={}&", r.version));
        }
        url.push_str("ticket=");
        url.push_str(&ticket);
        Ok(Response::new(DownloadLinkResponse {
            url,
            expires_at: tokens::rfc3339(exp),
        }))
    }

    async fn archive_link(
        &self,
        req: Request<ArchiveLinkRequest>,
    ) -> Result<Response<DownloadLinkResponse>, Status> {
        let who = caller(&req)?;
        let paths = req.into_inner().paths;
        // Checked now, so a wrong name fails here rather than in the
        // browser's download.
        self.files.select(&who, &paths).await?;
        let digest = crate::files::archive::selection_digest(&paths);
        let (ticket, exp) = self.auth.ticket(&who, &digest, 0, crate::auth::TICKET_TTL);
        Ok(Response::new(DownloadLinkResponse {
            url: format!("/zip?ticket={ticket}"),
            expires_at: tokens::rfc3339(exp),
        }))
    }

    async fn create_app_password(
        &self,
        req: Request<CreateAppPasswordRequest>,
    ) -> Result<Response<CreateAppPasswordResponse>, Status> {
        let who = caller(&req)?;
        let (row, password) = self
            .auth
            .create_app_password(&who, &req.into_inner().name)
            .await?;
        Ok(Response::new(CreateAppPasswordResponse {
            app_password: Some(app_password(row)),
            password,
        }))
    }

    async fn list_app_passwords(
        &self,
        req: Request<ListAppPasswordsRequest>,
    ) -> Result<Response<ListAppPasswordsResponse>, Status> {
        let who = caller(&req)?;
        let rows = self.auth.app_passwords(&who).await?;
        Ok(Response::new(ListAppPasswordsResponse {
            app_passwords: rows.into_iter().map(app_password).collect(),
        }))
    }

    async fn revoke_app_password(
        &self,
        req: Request<RevokeAppPasswordRequest>,
    ) -> Result<Response<RevokeAppPasswordResponse>, Status> {
        let who = caller(&req)?;
        let name = req.into_inner().name;
        if !self.auth.revoke_app_password(&who, &name).await? {
            return Err(Status::not_found(format!(
                "you have no app password named {name:?}"
            )));
        }
        Ok(Response::new(RevokeAppPasswordResponse {}))
    }
}
