//! TLS session tickets (`WebServer.https_session_resumption`, `https_ticket_key_file`): a
//! returning client resumes its session with a ticket instead of a full handshake (no
//! certificate signature, the costliest part of a new TLS connection).
//!
//! The tickets' keys are derived from a secret in a file, not drawn at random per process, so
//! that both processes of a zero-downtime reload (and several instances given the same file)
//! accept each other's tickets: a reload does not send every client back to a full handshake.
//! The key rotates every `PERIOD` (12 hours); a ticket is accepted in the period it was issued
//! and the next one, then the client makes a full handshake. The default file,
//! `<log_dir>/poolgate-tls-tickets.key`, is created at first start (32 random bytes, mode
//! 0600); replacing its content rotates every key at the next start or reload.

use super::TICKET_SECRET_MIN;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long one ticket key is used for new tickets.
const PERIOD_SECS: u64 = 12 * 3600;
/// Separates these keys from anything else derived from the same secret.
const SALT: &[u8] = b"poolgate session tickets v1";
/// A ticket: the key's period (8 bytes), the nonce, the sealed session with its tag.
const HEADER_LEN: usize = 8 + NONCE_LEN;

/// Issues and opens session tickets with keys derived from the ticket key file.
pub(super) struct TicketKeys {
    prk: hkdf::Prk,
    random: SystemRandom,
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKeys")
    }
}

impl TicketKeys {
    /// The keys of the secret in `path`, created there when the file does not exist.
    pub(super) fn from_file(path: &Path) -> Result<Self, String> {
        let secret = match std::fs::read(path) {
            Ok(secret) => secret,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(e) => return Err(format!("`{}`: {e}", path.display())),
        };
        Self::from_secret(&secret).map_err(|why| format!("`{}`: {why}", path.display()))
    }

    fn from_secret(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < TICKET_SECRET_MIN {
            return Err(format!(
                "holds {} bytes, a ticket key needs at least {TICKET_SECRET_MIN}",
                secret.len()
            ));
        }
        Ok(TicketKeys {
            prk: hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret),
            random: SystemRandom::new(),
        })
    }

    /// The key of `period` (12-hour steps since the Unix epoch).
    fn key(&self, period: u64) -> Option<LessSafeKey> {
        let info = period.to_be_bytes();
        let info = [info.as_slice()];
        let okm = self.prk.expand(&info, &AES_256_GCM).ok()?;
        let mut bytes = [0u8; 32];
        okm.fill(&mut bytes).ok()?;
        UnboundKey::new(&AES_256_GCM, &bytes)
            .ok()
            .map(LessSafeKey::new)
    }
}

fn current_period() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / PERIOD_SECS)
}

/// Write a new random secret to `path` (mode 0600), unless another process just did; the
/// secret in the file either way.
fn create(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let mut secret = vec![0u8; TICKET_SECRET_MIN];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| format!("`{shown}`: no random bytes for a new ticket key"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(&secret)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("`{shown}`: {e}"))?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read(path).map_err(|e| format!("`{shown}`: {e}"))
        }
        Err(e) => Err(format!("`{shown}`: cannot create it: {e}")),
    }
}

impl ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        // Issued at any point of a period, accepted to the end of the next one.
        PERIOD_SECS as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let period = current_period();
        let key = self.key(period)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(HEADER_LEN + plain.len() + AES_256_GCM.tag_len());
        ticket.extend_from_slice(&period.to_be_bytes());
        ticket.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&period.to_be_bytes()),
            &mut sealed,
        )
        .ok()?;
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < HEADER_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (period, rest) = ticket.split_at(8);
        let period_bytes: [u8; 8] = period.try_into().ok()?;
        let period = u64::from_be_bytes(period_bytes);
        let now = current_period();
        if period != now && period.checked_add(1) != Some(now) {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut opened = sealed.to_vec();
        let plain = self
            .key(period)?
            .open_in_place(nonce, Aad::from(&period_bytes), &mut opened)
            .ok()?;
        let len = plain.len();
        opened.truncate(len);
        Some(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_with_keys_of_the_same_secret_only() {
        let a = TicketKeys::from_secret(&[7u8; 32]).expect("keys");
        let b = TicketKeys::from_secret(&[7u8; 32]).expect("keys");
        let other = TicketKeys::from_secret(&[8u8; 48]).expect("keys");
        let ticket = a.encrypt(b"session state").expect("ticket");
        assert_ne!(&ticket[HEADER_LEN..], b"session state");
        assert_eq!(b.decrypt(&ticket).as_deref(), Some(&b"session state"[..]));
        assert_eq!(other.decrypt(&ticket), None);
        let mut forged = ticket.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(b.decrypt(&forged), None, "a changed ticket is refused");
        assert_eq!(b.decrypt(&ticket[..10]), None);
    }

    #[test]
    fn tickets_of_old_periods_are_refused() {
        let keys = TicketKeys::from_secret(&[1u8; 32]).expect("keys");
        let mut ticket = keys.encrypt(b"s").expect("ticket");
        let old = current_period() - 2;
        ticket[..8].copy_from_slice(&old.to_be_bytes());
        assert_eq!(keys.decrypt(&ticket), None);
    }

    #[test]
    fn the_secret_file_is_created_once_and_short_ones_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("tickets.key");
        let first = TicketKeys::from_file(&path).expect("created");
        let again = TicketKeys::from_file(&path).expect("read back");
        let ticket = first.encrypt(b"x").expect("ticket");
        assert_eq!(again.decrypt(&ticket).as_deref(), Some(&b"x"[..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").expect("write");
        let err = TicketKeys::from_file(&path).expect_err("too short");
        assert!(err.contains("at least 32"), "{err}");
    }
}
