//! The keyring: the secret keys everything that seals or signs uses, a
//! primary key and fallback keys, so a key can be rotated by configuration.
//!
//! # Keys
//!
//! A key is at least [`MIN_KEY_BYTES`] (32) random bytes, configured as
//! standard base64 (padded or not): `openssl rand -base64 32` makes one. The
//! first key is the **primary**: everything new is sealed or signed with it.
//! The others are **fallbacks**: what they sealed or signed still opens or
//! verifies, so a new key can become primary while data made under the old
//! one is still around. [`Keyring::from_base64_list`] reads
//! `"primary,fallback1,…"`, [`Keyring::from_file`] one key per line.
//!
//! # One key, one algorithm
//!
//! A configured key is never used directly. Each use has its own subkey,
//! derived with HKDF-SHA256 from the key and the name of the use: MACs
//! ([`MacPurpose`]: signed session ids, signed cookies) and sealing
//! ([`SealPurpose`]: values encrypted at rest, private cookies). A subkey is
//! derived once, when the keyring is built, and so are the keyed HMAC
//! states and AES-SIV ciphers, so a MAC or a seal costs no derivation or
//! key schedule.
//!
//! # Key ids
//!
//! Each key has a public 4-byte [`KeyId`] (the first bytes of
//! HMAC-SHA256(key, `"sessionkit key id"`)), written into sealed data so
//! opening tries the right key first. It identifies a key without telling
//! anything about it, and is the only thing about a key that `Debug` shows.
//! Errors name a key by its position, never by its material.
//!
//! # Sealed format
//!
//! [`Keyring::seal`] is deterministic authenticated encryption (AES-SIV,
//! RFC 5297, with a 512-bit subkey): the same plaintext, associated data and
//! key give the same bytes. The sealed bytes are
//!
//! ```text
//! version (1 byte, 1) | key id (4 bytes) | SIV tag (16 bytes) | ciphertext (as long as the plaintext)
//! ```
//!
//! and the version and key id are authenticated too (they are the first
//! associated data item, the caller's associated data the second).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use aes_siv::aead::generic_array::GenericArray;
use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// The shortest key accepted, in bytes (256 bits).
pub const MIN_KEY_BYTES: usize = 32;

/// The length of a MAC ([`Keyring::mac`]): HMAC-SHA256, 32 bytes.
pub const MAC_LEN: usize = 32;

/// The version byte that starts every sealed value.
pub const SEALED_VERSION: u8 = 1;

/// What [`Keyring::seal`] adds to a plaintext: version, key id, SIV tag.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

const HEADER_LEN: usize = 1 + 4;
const TAG_LEN: usize = 16;
const SIV_KEY_LEN: usize = 64;

/// Standard base64, padded or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The HKDF salt: fixed, so a subkey depends only on the key and its purpose.
const HKDF_SALT: &[u8] = b"sessionkit keyring v1";

/// What a MAC is for; each purpose has its own subkey.
///
/// ```
/// use sessionkit::keys::{Keyring, MacPurpose};
/// let keys = Keyring::new([7u8; 32], Vec::<Vec<u8>>::new())?;
/// let a = keys.mac(MacPurpose::SessionId, b"x");
/// let b = keys.mac(MacPurpose::CookieSigned, b"x");
/// assert_ne!(a, b, "one key, two purposes, two subkeys");
/// # Ok::<(), sessionkit::keys::KeyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MacPurpose {
    /// Signed session ids: a MAC over the id in the id cookie.
    SessionId,
    /// Signed cookie sessions ([`CookieStore::signed`](crate::CookieStore::signed)).
    CookieSigned,
}

impl MacPurpose {
    const ALL: [Self; 2] = [Self::SessionId, Self::CookieSigned];

    fn index(self) -> usize {
        match self {
            Self::SessionId => 0,
            Self::CookieSigned => 1,
        }
    }

    fn info(self) -> &'static [u8] {
        match self {
            Self::SessionId => b"sessionkit v1 hmac-sha256 session id",
            Self::CookieSigned => b"sessionkit v1 hmac-sha256 signed cookie",
        }
    }
}

/// What sealed data is for; each purpose has its own subkey.
///
/// ```
/// use sessionkit::keys::{Keyring, SealPurpose};
/// let keys = Keyring::new([7u8; 32], Vec::<Vec<u8>>::new())?;
/// let sealed = keys.seal(SealPurpose::ValueAtRest, b"field", b"value")?;
/// assert!(keys.open(SealPurpose::CookiePrivate, b"field", &sealed).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SealPurpose {
    /// Session field values encrypted at rest
    /// ([`EncryptedStore`](crate::EncryptedStore)).
    ValueAtRest,
    /// Private cookie sessions ([`CookieStore::private`](crate::CookieStore::private)).
    CookiePrivate,
}

impl SealPurpose {
    const ALL: [Self; 2] = [Self::ValueAtRest, Self::CookiePrivate];

    fn index(self) -> usize {
        match self {
            Self::ValueAtRest => 0,
            Self::CookiePrivate => 1,
        }
    }

    fn info(self) -> &'static [u8] {
        match self {
            Self::ValueAtRest => b"sessionkit v1 aes-siv value at rest",
            Self::CookiePrivate => b"sessionkit v1 aes-siv private cookie",
        }
    }
}

/// Which key of the keyring verified a MAC or opened sealed data.
///
/// [`KeyUse::Fallback`] tells the caller the data should be re-made under
/// the primary key when next written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUse {
    /// The primary key.
    Primary,
    /// A fallback key: its index among the fallbacks (0 = the first).
    Fallback(usize),
}

/// A key's public id: 4 bytes that name a key without telling anything
/// about it. Shown as 8 hex digits.
///
/// ```
/// use sessionkit::keys::Keyring;
/// let keys = Keyring::new([7u8; 32], Vec::<Vec<u8>>::new())?;
/// assert_eq!(keys.primary_id().to_string().len(), 8);
/// # Ok::<(), sessionkit::keys::KeyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 4]);

impl KeyId {
    /// The id's bytes, as written into sealed data.
    #[must_use]
    pub fn to_bytes(self) -> [u8; 4] {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Why a keyring could not be built. Keys are named by their position
/// (1 = the primary, 2 = the first fallback, …), never by their material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No key was configured.
    #[error("the keyring has no key: configure at least one base64 key, primary first (`openssl rand -base64 32` makes one)")]
    Empty,
    /// A key in a comma-separated list is empty.
    #[error("key {position} of the keyring is empty: separate keys with single commas, primary first, and leave no trailing comma")]
    Blank {
        /// The key's position, 1 = the primary.
        position: usize,
    },
    /// A key is not standard base64.
    #[error("key {position} of the keyring is not standard base64 (A-Z, a-z, 0-9, + and /, padding optional): make keys with `openssl rand -base64 32`")]
    NotBase64 {
        /// The key's position, 1 = the primary.
        position: usize,
    },
    /// A key decodes to fewer than [`MIN_KEY_BYTES`] bytes.
    #[error("key {position} of the keyring is shorter than {min} bytes once decoded: make keys with `openssl rand -base64 32`", min = MIN_KEY_BYTES)]
    TooShort {
        /// The key's position, 1 = the primary.
        position: usize,
    },
    /// The key file could not be read.
    #[error("the key file {} could not be read; check that it exists and that this process may read it", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
}

/// Sealing failed: the cipher refused its input. It does not happen with
/// the associated data [`Keyring::seal`] passes (two items); the error is
/// typed rather than a panic all the same.
#[derive(Debug, thiserror::Error)]
#[error("a value could not be sealed with the keyring's primary key")]
pub struct SealError;

/// One key: its id and its subkeys, derived once.
struct Key {
    id: KeyId,
    /// HMAC-SHA256 keyed with each MAC purpose's subkey, cloned per MAC.
    macs: [Hmac<Sha256>; 2],
    /// The AES-SIV cipher of each seal purpose.
    seals: [SivPool; 2],
}

/// AES-SIV ciphers of one subkey, ready for use. The `aes-siv` cipher is
/// used through `&mut` and is not `Clone`; making one costs two AES key
/// schedules, more than sealing a short value. So ciphers are made once and
/// lent out: one is made with the keyring, more only while several threads
/// seal at once, and at most [`SivPool::IDLE`] are kept.
struct SivPool {
    key: Zeroizing<[u8; SIV_KEY_LEN]>,
    idle: Mutex<Vec<Aes256Siv>>,
}

impl SivPool {
    const IDLE: usize = 16;

    fn new(key: Zeroizing<[u8; SIV_KEY_LEN]>) -> Self {
        let first = Aes256Siv::new(GenericArray::from_slice(&key[..]));
        Self {
            key,
            idle: Mutex::new(vec![first]),
        }
    }

    /// Runs `f` with a cipher of this subkey. A cipher is reusable after
    /// any call, failed ones included (`aes-siv` resets its MAC state).
    fn with<R>(&self, f: impl FnOnce(&mut Aes256Siv) -> R) -> R {
        let lent = self.lock().pop();
        let mut siv =
            lent.unwrap_or_else(|| Aes256Siv::new(GenericArray::from_slice(&self.key[..])));
        let result = f(&mut siv);
        let mut idle = self.lock();
        if idle.len() < Self::IDLE {
            idle.push(siv);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Aes256Siv>> {
        // The list is valid whatever a panicking holder did.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Key {
    fn derive(secret: &[u8]) -> Self {
        let mut id_mac = new_hmac(secret);
        id_mac.update(b"sessionkit key id");
        let digest = id_mac.finalize().into_bytes();
        let id = KeyId([digest[0], digest[1], digest[2], digest[3]]);

        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret);
        let macs = MacPurpose::ALL.map(|purpose| {
            let mut sub = Zeroizing::new([0u8; 32]);
            expand(&hkdf, purpose.info(), &mut sub[..]);
            new_hmac(&sub[..])
        });
        let seals = SealPurpose::ALL.map(|purpose| {
            let mut sub = Zeroizing::new([0u8; SIV_KEY_LEN]);
            expand(&hkdf, purpose.info(), &mut sub[..]);
            SivPool::new(sub)
        });
        Self { id, macs, seals }
    }

    fn mac(&self, purpose: MacPurpose, message: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.macs[purpose.index()].clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    fn siv(&self, purpose: SealPurpose) -> &SivPool {
        &self.seals[purpose.index()]
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, id {}>", self.id)
    }
}

fn new_hmac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; the `Err` arm exists only for MACs
    // with fixed-size keys.
    match <Hmac<Sha256> as hmac::Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of every length"),
    }
}

fn expand(hkdf: &Hkdf<Sha256>, info: &[u8], out: &mut [u8]) {
    // HKDF-SHA256 can expand up to 255 × 32 bytes; subkeys are 32 or 64.
    if hkdf.expand(info, out).is_err() {
        unreachable!("HKDF-SHA256 expands to 64 bytes");
    }
}

/// A primary key and zero or more fallback keys; cheap to clone (the keys
/// are shared), `Send + Sync`. The decoded keys are wiped from memory once
/// the subkeys are derived, and the AES-SIV subkeys when the last clone is
/// dropped; the keyed HMAC states and AES round keys inside the RustCrypto
/// types are not wiped (those crates do not offer it here).
///
/// ```
/// use sessionkit::keys::{KeyUse, Keyring, MacPurpose};
/// // Usually from configuration: `SESSION_KEYS=new,old`.
/// let old = Keyring::from_base64_list("b2xkIGtleSBvbGQga2V5IG9sZCBrZXkgb2xkIGtleSE=")?;
/// let rotated = Keyring::from_base64_list(
///     "bmV3IGtleSBuZXcga2V5IG5ldyBrZXkgbmV3IGtleSE=, b2xkIGtleSBvbGQga2V5IG9sZCBrZXkgb2xkIGtleSE=",
/// )?;
/// let tag = old.sign_id(b"some id");
/// assert_eq!(rotated.verify_id(b"some id", &tag), Some(KeyUse::Fallback(0)));
/// assert_eq!(rotated.verify_id(b"another id", &tag), None);
/// println!("{rotated:?}"); // Keyring { primary: <redacted, id …>, fallbacks: 1 }
/// # Ok::<(), sessionkit::keys::KeyError>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    /// Primary first.
    keys: Arc<[Key]>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.keys[0])
            .field("fallbacks", &(self.keys.len() - 1))
            .finish()
    }
}

impl Keyring {
    /// A keyring of raw keys (each at least [`MIN_KEY_BYTES`] bytes):
    /// `primary`, then `fallbacks` in the order they are tried.
    ///
    /// ```
    /// use sessionkit::keys::Keyring;
    /// let keys = Keyring::new([1u8; 32], [[2u8; 32]])?;
    /// assert_eq!(keys.fallbacks(), 1);
    /// assert!(Keyring::new([1u8; 16], Vec::<Vec<u8>>::new()).is_err());
    /// # Ok::<(), sessionkit::keys::KeyError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`KeyError::TooShort`] for a key shorter than [`MIN_KEY_BYTES`].
    pub fn new<P, F>(primary: P, fallbacks: impl IntoIterator<Item = F>) -> Result<Self, KeyError>
    where
        P: AsRef<[u8]>,
        F: AsRef<[u8]>,
    {
        let mut keys = vec![checked(1, primary.as_ref())?];
        for (i, key) in fallbacks.into_iter().enumerate() {
            keys.push(checked(i + 2, key.as_ref())?);
        }
        Ok(Self { keys: keys.into() })
    }

    /// A keyring from comma-separated standard base64 keys, primary first
    /// (`SESSION_KEYS=new,old`); whitespace around each key is ignored.
    ///
    /// ```
    /// use sessionkit::keys::{KeyError, Keyring};
    /// let keys = Keyring::from_base64_list("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")?;
    /// assert_eq!(keys.fallbacks(), 0);
    /// let err = Keyring::from_base64_list("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA, not base64!").unwrap_err();
    /// assert!(matches!(err, KeyError::NotBase64 { position: 2 }));
    /// # Ok::<(), KeyError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`KeyError`] naming the first bad key's position.
    pub fn from_base64_list(list: &str) -> Result<Self, KeyError> {
        if list.trim().is_empty() {
            return Err(KeyError::Empty);
        }
        Self::from_encoded(list.split(',').map(str::trim), true)
    }

    /// A keyring from a file of standard base64 keys, one per line, primary
    /// first; blank lines and lines starting with `#` are ignored.
    ///
    /// ```
    /// use sessionkit::keys::Keyring;
    /// let path = std::env::temp_dir().join(format!("sessionkit-doc-keys-{}", std::process::id()));
    /// std::fs::write(&path, "# primary\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n# old\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\n")?;
    /// let keys = Keyring::from_file(&path)?;
    /// assert_eq!(keys.fallbacks(), 1);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`KeyError::Unreadable`] if the file cannot be read, otherwise a
    /// [`KeyError`] naming the first bad key's position (counting keys, not
    /// lines).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            KeyError::Unreadable {
                path: path.to_path_buf(),
                source,
            }
        })?);
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'));
        Self::from_encoded(keys, false)
    }

    fn from_encoded<'a>(
        encoded: impl Iterator<Item = &'a str>,
        blank_is_error: bool,
    ) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (i, text) in encoded.enumerate() {
            let position = i + 1;
            if text.is_empty() && blank_is_error {
                return Err(KeyError::Blank { position });
            }
            // The decoder's error would name the offending character: a
            // piece of the key. Only the position is reported.
            let secret = Zeroizing::new(
                BASE64
                    .decode(text)
                    .map_err(|_| KeyError::NotBase64 { position })?,
            );
            keys.push(checked(position, &secret)?);
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys: keys.into() })
    }

    /// The number of fallback keys.
    #[must_use]
    pub fn fallbacks(&self) -> usize {
        self.keys.len() - 1
    }

    /// The primary key's id.
    #[must_use]
    pub fn primary_id(&self) -> KeyId {
        self.keys[0].id
    }

    /// Every key's id, primary first.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    /// The MAC of `message` for `purpose` under the primary key
    /// (HMAC-SHA256 with the purpose's subkey).
    #[must_use]
    pub fn mac(&self, purpose: MacPurpose, message: &[u8]) -> [u8; MAC_LEN] {
        self.keys[0].mac(purpose, message)
    }

    /// Which key, if any, made `tag` as the MAC of `message` for `purpose`:
    /// the primary is tried first, then each fallback; every comparison is
    /// constant-time.
    #[must_use]
    pub fn verify_mac(&self, purpose: MacPurpose, message: &[u8], tag: &[u8]) -> Option<KeyUse> {
        self.keys.iter().enumerate().find_map(|(i, key)| {
            bool::from(key.mac(purpose, message).ct_eq(tag)).then_some(key_use(i))
        })
    }

    /// The MAC of a session id under the primary key
    /// ([`MacPurpose::SessionId`]).
    #[must_use]
    pub fn sign_id(&self, id: &[u8]) -> [u8; MAC_LEN] {
        self.mac(MacPurpose::SessionId, id)
    }

    /// Which key, if any, signed `id` with `tag` ([`MacPurpose::SessionId`]).
    #[must_use]
    pub fn verify_id(&self, id: &[u8], tag: &[u8]) -> Option<KeyUse> {
        self.verify_mac(MacPurpose::SessionId, id, tag)
    }

    /// Seals `plaintext` under the primary key for `purpose`, bound to
    /// `associated` (which must be given again to open it). Deterministic:
    /// the same inputs give the same bytes (see the module docs for the
    /// format).
    ///
    /// ```
    /// use sessionkit::keys::{Keyring, SealPurpose, SEAL_OVERHEAD};
    /// let keys = Keyring::new([7u8; 32], Vec::<Vec<u8>>::new())?;
    /// let sealed = keys.seal(SealPurpose::ValueAtRest, b"cart", b"3 apples")?;
    /// assert_eq!(sealed.len(), 8 + SEAL_OVERHEAD);
    /// assert_eq!(sealed, keys.seal(SealPurpose::ValueAtRest, b"cart", b"3 apples")?);
    /// let (opened, _) = keys.open(SealPurpose::ValueAtRest, b"cart", &sealed).expect("opens");
    /// assert_eq!(opened, b"3 apples");
    /// assert!(keys.open(SealPurpose::ValueAtRest, b"name", &sealed).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`SealError`] if the cipher refuses the input (it does not, with
    /// these two associated data items).
    pub fn seal(
        &self,
        purpose: SealPurpose,
        associated: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let key = &self.keys[0];
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&key.id.0);
        out.extend_from_slice(&[0; TAG_LEN]);
        out.extend_from_slice(plaintext);
        let (head, body) = out.split_at_mut(SEAL_OVERHEAD);
        let (header, tag_slot) = head.split_at_mut(HEADER_LEN);
        let tag = key
            .siv(purpose)
            .with(|siv| siv.encrypt_in_place_detached([&*header, associated], body))
            .map_err(|_| SealError)?;
        tag_slot.copy_from_slice(&tag);
        Ok(out)
    }

    /// Opens what [`Keyring::seal`] sealed for `purpose` with `associated`,
    /// under any key of the keyring, and says which key opened it. `None`
    /// if no key opens it: tampered with, truncated, sealed for another
    /// purpose or associated data, under a key no longer in the keyring, or
    /// not sealed at all.
    #[must_use]
    pub fn open(
        &self,
        purpose: SealPurpose,
        associated: &[u8],
        sealed: &[u8],
    ) -> Option<(Vec<u8>, KeyUse)> {
        if sealed.len() < SEAL_OVERHEAD || sealed[0] != SEALED_VERSION {
            return None;
        }
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let (tag, ciphertext) = rest.split_at(TAG_LEN);
        let tag = GenericArray::from_slice(tag);
        // Key ids can collide (4 bytes): every key with this id is tried.
        self.keys
            .iter()
            .enumerate()
            .filter(|(_, key)| key.id.0 == header[1..])
            .find_map(|(i, key)| {
                let mut plain = ciphertext.to_vec();
                key.siv(purpose)
                    .with(|siv| {
                        siv.decrypt_in_place_detached([header, associated], &mut plain, tag)
                    })
                    .ok()
                    .map(|()| (plain, key_use(i)))
            })
    }
}

fn key_use(index: usize) -> KeyUse {
    match index {
        0 => KeyUse::Primary,
        i => KeyUse::Fallback(i - 1),
    }
}

fn checked(position: usize, secret: &[u8]) -> Result<Key, KeyError> {
    if secret.len() < MIN_KEY_BYTES {
        return Err(KeyError::TooShort { position });
    }
    Ok(Key::derive(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // 32 × 'A'
    const B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI"; // 32 × 'B', unpadded

    fn ring(keys: &[&str]) -> Keyring {
        Keyring::from_base64_list(&keys.join(",")).unwrap()
    }

    #[test]
    fn a_list_is_primary_first_trimmed_padded_or_not() {
        let keys = Keyring::from_base64_list(&format!("  {A} ,\t{B}\n")).unwrap();
        assert_eq!(keys.fallbacks(), 1);
        let ids: Vec<_> = keys.ids().collect();
        assert_eq!(ids[0], ring(&[A]).primary_id());
        assert_eq!(ids[1], ring(&[B]).primary_id());
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn bad_lists_name_the_position() {
        assert!(matches!(
            Keyring::from_base64_list(" "),
            Err(KeyError::Empty)
        ));
        assert!(matches!(
            Keyring::from_base64_list(&format!("{A},{B},%%%")),
            Err(KeyError::NotBase64 { position: 3 })
        ));
        assert!(matches!(
            Keyring::from_base64_list(&format!("{A},c2hvcnQ=")),
            Err(KeyError::TooShort { position: 2 })
        ));
        assert!(matches!(
            Keyring::from_base64_list(&format!("{A},")),
            Err(KeyError::Blank { position: 2 })
        ));
        let message = Keyring::from_base64_list("c2hvcnQ=")
            .unwrap_err()
            .to_string();
        assert!(message.contains("key 1"), "{message}");
        assert!(message.contains("32 bytes"), "says the minimum: {message}");
        assert!(!message.contains("c2hvcnQ"), "no key material: {message}");
        let message = Keyring::from_base64_list(&format!("{A}!"))
            .unwrap_err()
            .to_string();
        assert!(!message.contains("QUFB"), "no key material: {message}");
        assert!(Keyring::new([0u8; 31], [[0u8; 32]]).is_err());
        assert!(matches!(
            Keyring::new([0u8; 32], [[0u8; 31]]),
            Err(KeyError::TooShort { position: 2 })
        ));
    }

    #[test]
    fn a_file_skips_comments_and_blank_lines() {
        let path = std::env::temp_dir().join(format!("sessionkit-keys-{}", std::process::id()));
        std::fs::write(&path, format!("# current\n{A}\n\n  # previous\n  {B}  \n")).unwrap();
        let keys = Keyring::from_file(&path).unwrap();
        assert_eq!(keys.fallbacks(), 1);
        assert_eq!(keys.primary_id(), ring(&[A]).primary_id());
        std::fs::write(&path, format!("{A}\n# bad one\nnot-base64\n")).unwrap();
        assert!(matches!(
            Keyring::from_file(&path),
            Err(KeyError::NotBase64 { position: 2 })
        ));
        std::fs::write(&path, "# nothing\n\n").unwrap();
        assert!(matches!(Keyring::from_file(&path), Err(KeyError::Empty)));
        std::fs::remove_file(&path).unwrap();
        let err = Keyring::from_file(&path).unwrap_err();
        assert!(matches!(err, KeyError::Unreadable { .. }));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn a_keyring_is_shared_not_copied() {
        fn shared<T: Clone + Send + Sync + 'static>() {}
        shared::<Keyring>();
        let keys = ring(&[A, B]);
        let clone = keys.clone();
        assert!(Arc::ptr_eq(&keys.keys, &clone.keys));
    }

    #[test]
    fn debug_is_redacted() {
        let keys = ring(&[A, B]);
        let shown = format!("{keys:?}");
        assert_eq!(
            shown,
            format!(
                "Keyring {{ primary: <redacted, id {}>, fallbacks: 1 }}",
                keys.primary_id()
            )
        );
        for needle in ["QUFB", "AAAA", "QkJC", "BBBB", "65, 65"] {
            assert!(!shown.contains(needle), "{shown}");
        }
        let pretty = format!("{keys:#?}");
        assert!(
            !pretty.contains("AAAA") && !pretty.contains("65,"),
            "{pretty}"
        );
    }

    #[test]
    fn macs_verify_with_primary_fallback_not_removed() {
        let old = ring(&[A]);
        let rotated = ring(&[B, A]);
        let only_new = ring(&[B]);
        let tag = old.sign_id(b"id-1");
        assert_eq!(old.verify_id(b"id-1", &tag), Some(KeyUse::Primary));
        assert_eq!(rotated.verify_id(b"id-1", &tag), Some(KeyUse::Fallback(0)));
        assert_eq!(only_new.verify_id(b"id-1", &tag), None, "removed key");
        assert_eq!(rotated.verify_id(b"id-2", &tag), None, "other message");
        assert_eq!(rotated.verify_id(b"id-1", &tag[..31]), None, "short tag");
        assert_eq!(
            rotated.verify_mac(MacPurpose::CookieSigned, b"id-1", &tag),
            None,
            "other purpose"
        );
        let new_tag = rotated.sign_id(b"id-1");
        assert_eq!(only_new.verify_id(b"id-1", &new_tag), Some(KeyUse::Primary));
    }

    #[test]
    fn sealing_is_deterministic_and_names_its_key() {
        let keys = ring(&[A]);
        let sealed = keys.seal(SealPurpose::ValueAtRest, b"f", b"v").unwrap();
        assert_eq!(sealed[0], SEALED_VERSION);
        assert_eq!(sealed[1..5], keys.primary_id().to_bytes());
        assert_eq!(
            sealed,
            keys.seal(SealPurpose::ValueAtRest, b"f", b"v").unwrap()
        );
        assert_ne!(
            sealed,
            keys.seal(SealPurpose::ValueAtRest, b"g", b"v").unwrap(),
            "the associated data changes the bytes"
        );
        let empty = keys.seal(SealPurpose::ValueAtRest, b"f", b"").unwrap();
        assert_eq!(
            keys.open(SealPurpose::ValueAtRest, b"f", &empty),
            Some((Vec::new(), KeyUse::Primary))
        );
    }

    #[test]
    fn ciphers_are_reused_after_failures_and_across_threads() {
        let keys = ring(&[A]);
        let sealed = keys.seal(SealPurpose::ValueAtRest, b"f", b"v").unwrap();
        assert!(keys.open(SealPurpose::ValueAtRest, b"g", &sealed).is_none());
        assert_eq!(
            keys.seal(SealPurpose::ValueAtRest, b"f", b"v").unwrap(),
            sealed,
            "a cipher that just failed to open seals as a fresh one"
        );
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                let keys = &keys;
                scope.spawn(move || {
                    for i in 0..200u8 {
                        let plain = [t, i];
                        let sealed = keys.seal(SealPurpose::ValueAtRest, b"f", &plain).unwrap();
                        let (opened, _) =
                            keys.open(SealPurpose::ValueAtRest, b"f", &sealed).unwrap();
                        assert_eq!(opened, plain);
                    }
                });
            }
        });
        assert!(keys.keys[0].seals[0].lock().len() <= SivPool::IDLE);
    }

    #[test]
    fn a_changed_header_does_not_open() {
        let keys = ring(&[A]);
        let mut sealed = keys.seal(SealPurpose::ValueAtRest, b"f", b"v").unwrap();
        sealed[0] = 2;
        assert!(keys.open(SealPurpose::ValueAtRest, b"f", &sealed).is_none());
        assert!(keys.open(SealPurpose::ValueAtRest, b"f", b"").is_none());
        assert!(keys
            .open(SealPurpose::ValueAtRest, b"f", &[SEALED_VERSION; 21])
            .is_none());
    }

    fn field_name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..24)
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..300)
    }

    proptest! {
        #[test]
        fn open_inverts_seal(name in field_name(), plain in value()) {
            let keys = ring(&[A]);
            let sealed = keys.seal(SealPurpose::ValueAtRest, &name, &plain).unwrap();
            prop_assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
            prop_assert_eq!(
                keys.open(SealPurpose::ValueAtRest, &name, &sealed),
                Some((plain.clone(), KeyUse::Primary))
            );
            let rotated = ring(&[B, A]);
            prop_assert_eq!(
                rotated.open(SealPurpose::ValueAtRest, &name, &sealed),
                Some((plain, KeyUse::Fallback(0)))
            );
        }

        #[test]
        fn any_flipped_bit_fails_to_open(
            name in field_name(),
            plain in value(),
            bit in any::<proptest::sample::Index>(),
        ) {
            let keys = ring(&[A]);
            let mut sealed = keys.seal(SealPurpose::ValueAtRest, &name, &plain).unwrap();
            let bit = bit.index(sealed.len() * 8);
            sealed[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(keys.open(SealPurpose::ValueAtRest, &name, &sealed).is_none());
        }

        #[test]
        fn any_truncation_fails_to_open(
            name in field_name(),
            plain in value(),
            cut in any::<proptest::sample::Index>(),
        ) {
            let keys = ring(&[A]);
            let sealed = keys.seal(SealPurpose::ValueAtRest, &name, &plain).unwrap();
            let keep = cut.index(sealed.len());
            prop_assert!(keys.open(SealPurpose::ValueAtRest, &name, &sealed[..keep]).is_none());
        }

        #[test]
        fn a_removed_key_fails_to_open(name in field_name(), plain in value()) {
            let sealed = ring(&[A]).seal(SealPurpose::ValueAtRest, &name, &plain).unwrap();
            prop_assert!(ring(&[B]).open(SealPurpose::ValueAtRest, &name, &sealed).is_none());
            prop_assert!(ring(&[A])
                .open(SealPurpose::CookiePrivate, &name, &sealed)
                .is_none(), "another purpose's subkey");
        }
    }
}
