//! [`DbLocks`]: WebDAV's lock system over the metadata database, so that
//! a lock taken through one server holds on every server of the database
//! (the rules are in `meta::sql::locks`).

use super::fs::file_path;
use crate::meta::{LockRow, Meta, NewLock, OwnerId};
use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use std::time::{Duration, UNIX_EPOCH};
use xmltree::Element;

/// One owner's locks, for one request.
#[derive(Clone)]
pub struct DbLocks {
    meta: Meta,
    owner: OwnerId,
    /// Where the WebDAV tree is mounted (`/dav`), for the locks' roots.
    prefix: &'static str,
}

impl std::fmt::Debug for DbLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbLocks")
            .field("owner", &self.owner)
            .finish()
    }
}

/// What a request sees when the database cannot answer: a lock in its
/// way, so nothing is written unchecked; the client may retry.
fn unanswered(path: String) -> LockRow {
    LockRow {
        token: String::new(),
        path,
        principal: None,
        owner_xml: None,
        shared: false,
        deep: false,
        timeout_ms: None,
        expires_at_ms: None,
    }
}

impl DbLocks {
    pub fn new(meta: Meta, owner: OwnerId, prefix: &'static str) -> Self {
        Self {
            meta,
            owner,
            prefix,
        }
    }

    fn dav_lock(&self, l: LockRow) -> DavLock {
        let url = format!("{}/{}", self.prefix, crate::api::http::path_encode(&l.path));
        let mut path = DavPath::new(&url).unwrap_or_else(|_| DavPath::new("/").expect("the root"));
        let _ = path.set_prefix(self.prefix);
        DavLock {
            token: l.token,
            path: Box::new(path),
            principal: l.principal,
            owner: l
                .owner_xml
                .and_then(|x| Element::parse(x.as_bytes()).ok())
                .map(Box::new),
            timeout_at: l
                .expires_at_ms
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)),
            timeout: l.timeout_ms.map(Duration::from_millis),
            shared: l.shared,
            deep: l.deep,
        }
    }
}

/// Paths the locks are kept under; one that is not a valid file path
/// cannot be locked, and is taken for the root when checked (the safer
/// way: more locks bear on it, not fewer).
fn key(path: &DavPath) -> String {
    file_path(path).unwrap_or_default()
}

/// `e` as XML text, to store: each element declares the namespace of its
/// prefix, so the text parses back alone (the request's own declarations
/// stayed on elements around it).
fn xml(e: &Element) -> Option<String> {
    fn declare(e: &mut Element) {
        if let (Some(p), Some(ns)) = (e.prefix.clone(), e.namespace.clone()) {
            e.namespaces
                .get_or_insert_with(xmltree::Namespace::empty)
                .put(p, ns);
        }
        for child in e.children.iter_mut() {
            if let xmltree::XMLNode::Element(c) = child {
                declare(c);
            }
        }
    }
    let mut e = e.clone();
    declare(&mut e);
    let mut out = Vec::new();
    let config = xmltree::EmitterConfig::new().write_document_declaration(false);
    e.write_with_config(&mut out, config).ok()?;
    String::from_utf8(out).ok()
}

impl DavLockSystem for DbLocks {
    fn lock(
        &self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let new = NewLock {
            owner: self.owner,
            path: key(path),
            principal: principal.map(str::to_string),
            owner_xml: owner.and_then(xml),
            timeout,
            shared,
            deep,
        };
        let asked = path.clone();
        Box::pin(async move {
            match self.meta.lock(&new).await {
                Ok(Ok(l)) => {
                    let mut l = self.dav_lock(l);
                    l.path = Box::new(asked);
                    Ok(l)
                }
                Ok(Err(held)) => Err(self.dav_lock(held)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take a WebDAV lock");
                    Err(self.dav_lock(unanswered(new.path)))
                }
            }
        })
    }

    fn unlock(&self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let (path, token) = (key(path), token.to_string());
        Box::pin(async move {
            match self.meta.unlock(self.owner, &path, &token).await {
                Ok(true) => Ok(()),
                _ => Err(()),
            }
        })
    }

    fn refresh(
        &self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let (path, token) = (key(path), token.to_string());
        Box::pin(async move {
            match self
                .meta
                .refresh_lock(self.owner, &path, &token, timeout)
                .await
            {
                Ok(Some(l)) => Ok(self.dav_lock(l)),
                _ => Err(()),
            }
        })
    }

    fn check(
        &self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let path = key(path);
        // No principal: a token counts whoever submits it.
        let principal = principal.filter(|_| !ignore_principal).map(str::to_string);
        let tokens = submitted_tokens.to_vec();
        Box::pin(async move {
            let found = self
                .meta
                .check_locks(self.owner, &path, &principal, deep, &tokens)
                .await;
            match found {
                Ok(None) => Ok(()),
                Ok(Some(l)) => Err(self.dav_lock(l)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check WebDAV locks");
                    Err(self.dav_lock(unanswered(path)))
                }
            }
        })
    }

    fn discover(&self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = key(path);
        Box::pin(async move {
            match self.meta.discover_locks(self.owner, &path).await {
                Ok(locks) => locks.into_iter().map(|l| self.dav_lock(l)).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list WebDAV locks");
                    Vec::new()
                }
            }
        })
    }

    fn delete(&self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let path = key(path);
        Box::pin(async move { self.meta.drop_locks(self.owner, &path).await.map_err(drop) })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_owner_element_is_stored_as_xml_that_parses_back() {
        let lockinfo = br#"<D:lockinfo xmlns:D="DAV:"><D:owner>litmus <D:href>x</D:href></D:owner></D:lockinfo>"#;
        let tree = xmltree::Element::parse(&lockinfo[..]).unwrap();
        let owner = tree.get_child("owner").unwrap();
        let text = super::xml(owner).expect("written");
        let back = xmltree::Element::parse(text.as_bytes()).expect(&text);
        assert_eq!(back.name, "owner");
        assert_eq!(back.namespace.as_deref(), Some("DAV:"));
        assert!(text.contains("litmus"), "{text}");
    }
}
