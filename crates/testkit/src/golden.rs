//! Golden files: committed bytes that an encoding must keep reading and writing.
//!
//! A [`GoldenSet`] checks sample values against files `<dir>/<kind>/<case>`: the file must
//! decode to the sample and the sample must encode to the file, byte for byte. A missing
//! file is written from the sample and reported as a failure ("created golden file X:
//! review and commit it"), so a test run never silently creates the reference it then
//! passes against. Files in a kind's directory that no case claims are failures too (a
//! removed sample must be noticed). Every problem of a run is collected and reported at
//! once by [`GoldenSet::finish`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{Debug, Display};
use std::fs;
use std::path::{Path, PathBuf};

/// A set of golden cases under one directory, checked together.
#[derive(Debug)]
pub struct GoldenSet {
    dir: PathBuf,
    cases: BTreeMap<String, BTreeSet<String>>,
    problems: Vec<String>,
    checked: usize,
}

impl GoldenSet {
    /// Cases under `dir` (typically `CARGO_MANIFEST_DIR/tests/golden/v1`).
    pub fn new(dir: impl Into<PathBuf>) -> GoldenSet {
        GoldenSet {
            dir: dir.into(),
            cases: BTreeMap::new(),
            problems: Vec::new(),
            checked: 0,
        }
    }

    /// Checks `sample` against `<dir>/<kind>/<case>` with `PartialEq`; see
    /// [`GoldenSet::check_by`].
    pub fn check<T, E1, E2>(
        &mut self,
        kind: &str,
        case: &str,
        sample: &T,
        encode: impl FnOnce(&T) -> Result<Vec<u8>, E1>,
        decode: impl FnOnce(&[u8]) -> Result<T, E2>,
    ) where
        T: Debug + PartialEq,
        E1: Display,
        E2: Display,
    {
        self.check_by(kind, case, sample, encode, decode, |a, b| a == b);
    }

    /// Checks that `encode(sample)` equals the file and that the file decodes to a value
    /// `same` as `sample`. A missing file is created from `encode(sample)` and counted as
    /// a failure.
    pub fn check_by<T, E1, E2>(
        &mut self,
        kind: &str,
        case: &str,
        sample: &T,
        encode: impl FnOnce(&T) -> Result<Vec<u8>, E1>,
        decode: impl FnOnce(&[u8]) -> Result<T, E2>,
        same: impl Fn(&T, &T) -> bool,
    ) where
        T: Debug,
        E1: Display,
        E2: Display,
    {
        let path = self.claim(kind, case);
        let encoded = match encode(sample) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.problems
                    .push(format!("{}: encoding the sample failed: {e}", path.display()));
                return;
            }
        };
        let Some(file) = self.read_or_create(&path, &encoded) else {
            return;
        };
        match decode(&file) {
            Ok(decoded) if same(&decoded, sample) => {}
            Ok(decoded) => self.problems.push(format!(
                "{}: decodes to\n  {decoded:?}\nnot the sample\n  {sample:?}",
                path.display()
            )),
            Err(e) => self
                .problems
                .push(format!("{}: does not decode: {e}", path.display())),
        }
        if encoded != file {
            self.problems.push(format!(
                "{}: the sample encodes to other bytes\n{}",
                path.display(),
                describe_difference(&file, &encoded)
            ));
        }
    }

    /// Checks a file that only has to be read, not written again: bytes of a previous
    /// build that this one decodes (e.g. into a coarser value). The file must exist; it is
    /// never created.
    pub fn check_decode_only<T, E>(
        &mut self,
        kind: &str,
        case: &str,
        expected: &T,
        decode: impl FnOnce(&[u8]) -> Result<T, E>,
    ) where
        T: Debug + PartialEq,
        E: Display,
    {
        let path = self.claim(kind, case);
        self.checked += 1;
        match fs::read(&path) {
            Ok(file) => match decode(&file) {
                Ok(decoded) if decoded == *expected => {}
                Ok(decoded) => self.problems.push(format!(
                    "{}: decodes to {decoded:?}, expected {expected:?}",
                    path.display()
                )),
                Err(e) => self.problems.push(format!("{}: does not decode: {e}", path.display())),
            },
            Err(e) => self.problems.push(format!(
                "{}: cannot read this decode-only golden file ({e}); it must come from the build that wrote it",
                path.display()
            )),
        }
    }

    /// Checks that `bytes` (another way of encoding, named `what`) equal the golden file
    /// `<dir>/<kind>/<case>`, which some other check claims. Nothing is created.
    pub fn check_bytes(&mut self, kind: &str, case: &str, what: &str, bytes: &[u8]) {
        let path = self.dir.join(kind).join(case);
        match fs::read(&path) {
            Ok(file) if file == bytes => {}
            Ok(file) => self.problems.push(format!(
                "{}: {what} gives other bytes\n{}",
                path.display(),
                describe_difference(&file, bytes)
            )),
            Err(e) => self
                .problems
                .push(format!("{}: {what}: cannot read it ({e})", path.display())),
        }
    }

    /// Fails (panics) with every problem found, including files that no case claimed.
    /// Returns the number of cases checked.
    pub fn finish(mut self) -> usize {
        for (kind, cases) in &self.cases {
            let Ok(entries) = fs::read_dir(self.dir.join(kind)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !cases.contains(&name) {
                    self.problems.push(format!(
                        "{}: no sample claims this golden file (a removed case? keep the sample, or delete the file knowingly)",
                        entry.path().display()
                    ));
                }
            }
        }
        if !self.problems.is_empty() {
            panic!(
                "{} golden problem(s) in {}:\n\n{}",
                self.problems.len(),
                self.dir.display(),
                self.problems.join("\n\n")
            );
        }
        self.checked
    }

    fn claim(&mut self, kind: &str, case: &str) -> PathBuf {
        if !self
            .cases
            .entry(kind.to_string())
            .or_default()
            .insert(case.to_string())
        {
            self.problems
                .push(format!("golden case {kind}/{case} is checked twice"));
        }
        self.dir.join(kind).join(case)
    }

    fn read_or_create(&mut self, path: &Path, encoded: &[u8]) -> Option<Vec<u8>> {
        self.checked += 1;
        match fs::read(path) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let written = path
                    .parent()
                    .map_or(Ok(()), fs::create_dir_all)
                    .and_then(|()| fs::write(path, encoded));
                self.problems.push(match written {
                    Ok(()) => format!("created golden file {}: review and commit it", path.display()),
                    Err(e) => format!(
                        "golden file {} is missing and cannot be created: {e}",
                        path.display()
                    ),
                });
                None
            }
            Err(e) => {
                self.problems
                    .push(format!("cannot read golden file {}: {e}", path.display()));
                None
            }
        }
    }
}

/// Which variants of which enums a set of golden samples holds, so a test can demand
/// that every variant has a golden case. Filled by [`golden_variant!`](crate::golden_variant).
#[derive(Debug, Default)]
pub struct Coverage {
    enums: BTreeMap<&'static str, (BTreeSet<&'static str>, BTreeSet<&'static str>)>,
}

impl Coverage {
    /// Records that a sample holds `variant` of enum `name`, whose variants are `all`.
    pub fn hit(&mut self, name: &'static str, all: &[&'static str], variant: &'static str) {
        let (declared, hit) = self.enums.entry(name).or_default();
        declared.extend(all);
        hit.insert(variant);
    }

    /// Fails (panics) unless every enum in `expected_enums` was seen and every declared
    /// variant of every enum seen is held by some sample.
    pub fn check(&self, expected_enums: &[&str]) {
        let mut problems = Vec::new();
        for name in expected_enums {
            if !self.enums.contains_key(name) {
                problems.push(format!("no sample holds any {name}"));
            }
        }
        for (name, (declared, hit)) in &self.enums {
            for missing in declared.difference(hit) {
                problems.push(format!(
                    "no sample holds {name}::{missing}: add a golden case with it"
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "golden samples miss variants:\n{}",
            problems.join("\n")
        );
    }
}

/// Records in a [`Coverage`] which variant `$value` is. The arms are `pattern => "Name"`,
/// each optionally followed by `; expression` to walk what the variant holds. Write them
/// exhaustively, without a `_` arm: then a new variant does not compile until it has an
/// arm, and [`Coverage::check`] fails until a sample holds it.
#[macro_export]
macro_rules! golden_variant {
    ($cov:expr, $enum_name:literal, $value:expr, { $($pat:pat => $name:literal $(; $then:expr)?),+ $(,)? }) => {{
        const ALL: &[&str] = &[$($name),+];
        match $value {
            $($pat => {
                $crate::golden::Coverage::hit($cov, $enum_name, ALL, $name);
                $($then;)?
            })+
        }
    }};
}

/// Where two byte strings first differ, with hex around that point.
fn describe_difference(expected: &[u8], actual: &[u8]) -> String {
    let at = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let window = |bytes: &[u8]| {
        let from = at.saturating_sub(8);
        let to = (at + 24).min(bytes.len());
        bytes[from.min(to)..to]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "  first difference at byte {at} (file {} bytes, encoded {} bytes)\n  file:    ..{}\n  encoded: ..{}",
        expected.len(),
        actual.len(),
        window(expected),
        window(actual)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: &u32) -> Result<Vec<u8>, String> {
        Ok(v.to_le_bytes().to_vec())
    }

    fn decode(b: &[u8]) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            b.try_into().map_err(|_| "length".to_string())?,
        ))
    }

    #[test]
    fn a_missing_file_is_created_and_fails_then_passes() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = GoldenSet::new(dir.path());
        set.check("n", "seven.bin", &7, encode, decode);
        let failed = std::panic::catch_unwind(move || set.finish()).unwrap_err();
        let message = failed.downcast_ref::<String>().unwrap();
        assert!(message.contains("created golden file") && message.contains("review and commit it"));
        assert_eq!(
            fs::read(dir.path().join("n/seven.bin")).unwrap(),
            vec![7, 0, 0, 0]
        );

        let mut set = GoldenSet::new(dir.path());
        set.check("n", "seven.bin", &7, encode, decode);
        assert_eq!(set.finish(), 1);
    }

    #[test]
    fn changed_bytes_and_unclaimed_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("n")).unwrap();
        fs::write(dir.path().join("n/seven.bin"), [8, 0, 0, 0]).unwrap();
        fs::write(dir.path().join("n/stale.bin"), [1]).unwrap();
        let mut set = GoldenSet::new(dir.path());
        set.check("n", "seven.bin", &7, encode, decode);
        let failed = std::panic::catch_unwind(move || set.finish()).unwrap_err();
        let message = failed.downcast_ref::<String>().unwrap();
        assert!(message.contains("first difference at byte 0"), "{message}");
        assert!(message.contains("decodes to"), "{message}");
        assert!(message.contains("stale.bin: no sample claims"), "{message}");
    }
}
