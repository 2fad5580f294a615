//! `kernel.lock`: the pinned Debian kernel package per architecture (name, version, sha256).
//!
//! The format is a tiny INI subset (`[arch]` sections of `key = "value"` lines, `#` comments) so
//! mkimage needs no TOML crate; anything else in the file is an error, not silently ignored.

use std::fmt;

/// One pinned kernel package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPin {
    /// Exact Debian package name, e.g. `linux-image-6.1.0-56-amd64`.
    pub package: String,
    /// Exact Debian version, e.g. `6.1.192-2`.
    pub version: String,
    /// Debian architecture of the package (`amd64`, `arm64`).
    pub deb_arch: String,
    /// Lower-case hex sha256 of the `.deb`.
    pub sha256: String,
}

impl KernelPin {
    /// The `apt-get download` argument: `NAME=VERSION` (with `:ARCH` for a foreign architecture).
    pub fn apt_spec(&self, native_deb_arch: &str) -> String {
        if self.deb_arch == native_deb_arch {
            format!("{}={}", self.package, self.version)
        } else {
            format!("{}:{}={}", self.package, self.deb_arch, self.version)
        }
    }

    /// The file name `apt-get download` writes (epochs are not used by Debian kernels).
    pub fn deb_file_name(&self) -> String {
        format!("{}_{}_{}.deb", self.package, self.version, self.deb_arch)
    }

    /// The kernel release (`uname -r`): the package name without `linux-image-`.
    pub fn release(&self) -> &str {
        self.package
            .strip_prefix("linux-image-")
            .unwrap_or(&self.package)
    }
}

/// Why `kernel.lock` could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    Syntax { line: usize, text: String },
    MissingSection(String),
    MissingKey { section: String, key: &'static str },
    BadSha256(String),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Syntax { line, text } => {
                write!(f, "kernel.lock line {line}: cannot parse {text:?}")
            }
            LockError::MissingSection(arch) => write!(f, "kernel.lock has no [{arch}] section"),
            LockError::MissingKey { section, key } => {
                write!(f, "kernel.lock [{section}] lacks {key}")
            }
            LockError::BadSha256(s) => write!(f, "kernel.lock sha256 {s:?} is not 64 hex digits"),
        }
    }
}

impl std::error::Error for LockError {}

/// Finds the pin for `arch` in the text of a lock file.
pub fn parse(text: &str, arch: &str) -> Result<KernelPin, LockError> {
    let mut section: Option<String> = None;
    let (mut package, mut version, mut deb_arch, mut sha256) = (None, None, None, None);
    let mut found = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let syntax = || LockError::Syntax {
            line: i + 1,
            text: raw.to_string(),
        };
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            found |= name.trim() == arch;
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(syntax)?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(syntax)?
            .to_string();
        if section.as_deref() != Some(arch) {
            continue;
        }
        match key.trim() {
            "package" => package = Some(value),
            "version" => version = Some(value),
            "deb_arch" => deb_arch = Some(value),
            "sha256" => sha256 = Some(value),
            _ => return Err(syntax()),
        }
    }
    if !found {
        return Err(LockError::MissingSection(arch.to_string()));
    }
    let missing = |key| LockError::MissingKey {
        section: arch.to_string(),
        key,
    };
    let sha256 = sha256.ok_or_else(|| missing("sha256"))?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LockError::BadSha256(sha256));
    }
    Ok(KernelPin {
        package: package.ok_or_else(|| missing("package"))?,
        version: version.ok_or_else(|| missing("version"))?,
        deb_arch: deb_arch.ok_or_else(|| missing("deb_arch"))?,
        sha256: sha256.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
# comment
[x86_64]
package = "linux-image-6.1.0-56-amd64"
version = "6.1.192-2"
deb_arch = "amd64"
sha256 = "a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1"

[aarch64]
package = "linux-image-6.1.0-56-arm64"
version = "6.1.192-2"
deb_arch = "arm64"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;

    #[test]
    fn picks_the_section_of_the_arch() {
        let pin = parse(LOCK, "x86_64").unwrap();
        assert_eq!(pin.package, "linux-image-6.1.0-56-amd64");
        assert_eq!(
            pin.apt_spec("amd64"),
            "linux-image-6.1.0-56-amd64=6.1.192-2"
        );
        assert_eq!(
            pin.deb_file_name(),
            "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb"
        );
        assert_eq!(pin.release(), "6.1.0-56-amd64");
        let arm = parse(LOCK, "aarch64").unwrap();
        assert_eq!(
            arm.apt_spec("amd64"),
            "linux-image-6.1.0-56-arm64:arm64=6.1.192-2"
        );
    }

    #[test]
    fn refuses_incomplete_or_malformed_pins() {
        assert_eq!(
            parse(LOCK, "riscv64"),
            Err(LockError::MissingSection("riscv64".into()))
        );
        let short =
            "[x86_64]\npackage = \"p\"\nversion = \"v\"\ndeb_arch = \"amd64\"\nsha256 = \"abc\"\n";
        assert_eq!(
            parse(short, "x86_64"),
            Err(LockError::BadSha256("abc".into()))
        );
        let unquoted = "[x86_64]\npackage = p\n";
        assert!(matches!(
            parse(unquoted, "x86_64"),
            Err(LockError::Syntax { line: 2, .. })
        ));
        let no_version = "[x86_64]\npackage = \"p\"\n";
        assert!(matches!(
            parse(no_version, "x86_64"),
            Err(LockError::MissingKey { key: "sha256", .. })
        ));
    }
}
