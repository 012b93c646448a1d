//! Names of users and groups, read the way this build can.
//!
//! The dynamically linked build asks the C library (`getpwuid`, `getgrgid`,
//! `getgrnam`), so that names from NSS (LDAP, sssd) work as everywhere
//! else. The static build (`scripts/package.sh`, `crt-static`) must not:
//! glibc's NSS loads shared modules of its own version at run time, which a
//! static binary cannot count on finding. It reads `/etc/passwd` and
//! `/etc/group` itself instead; a name that only a directory service knows
//! is then unknown, said so in one line by the caller, and a numeric id
//! always works (README: Set up).
//!
//! Invariants: nothing here fails; an unknown id or name is `None`. Each
//! file is read whole but at most [`MAX_FILE`] bytes of it.

/// The account files are read up to this size (a group file of a million
/// members is about 10 MiB).
pub const MAX_FILE: u64 = 64 << 20;

/// The name of the user with id `uid`.
pub fn user_name(uid: u32) -> Option<String> {
    #[cfg(target_feature = "crt-static")]
    {
        name_of(&read("/etc/passwd")?, uid)
    }
    #[cfg(not(target_feature = "crt-static"))]
    // SAFETY: getpwuid returns a pointer into static storage or null; the
    // name is copied out at once.
    unsafe {
        let pw = libc::getpwuid(uid);
        c_name((!pw.is_null()).then(|| (*pw).pw_name))
    }
}

/// The name of the group with id `gid`.
pub fn group_name(gid: u32) -> Option<String> {
    #[cfg(target_feature = "crt-static")]
    {
        name_of(&read("/etc/group")?, gid)
    }
    #[cfg(not(target_feature = "crt-static"))]
    // SAFETY: as in user_name, for getgrgid.
    unsafe {
        let gr = libc::getgrgid(gid);
        c_name((!gr.is_null()).then(|| (*gr).gr_name))
    }
}

/// A name the C library returned (its pointer, if it returned an entry),
/// copied out.
///
/// # Safety
/// The pointer, when not null, points to a NUL-terminated string that stays
/// valid during the call.
#[cfg(not(target_feature = "crt-static"))]
unsafe fn c_name(name: Option<*mut libc::c_char>) -> Option<String> {
    let p = name.filter(|p| !p.is_null())?;
    // SAFETY: non-null and NUL-terminated, by the caller's promise.
    Some(
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The id of the group called `name`.
pub fn group_id(name: &str) -> Option<u32> {
    #[cfg(target_feature = "crt-static")]
    {
        id_of(&read("/etc/group")?, name)
    }
    #[cfg(not(target_feature = "crt-static"))]
    {
        let c = std::ffi::CString::new(name).ok()?;
        // SAFETY: getgrnam takes a NUL-terminated name; the gid is read at once.
        let gr = unsafe { libc::getgrnam(c.as_ptr()) };
        // SAFETY: non-null pointer from getgrnam.
        (!gr.is_null()).then(|| unsafe { (*gr).gr_gid })
    }
}

/// Whether this build reads the account files itself (the static one).
pub const FILES_ONLY: bool = cfg!(target_feature = "crt-static");

#[cfg_attr(not(target_feature = "crt-static"), allow(dead_code))]
fn read(path: &str) -> Option<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE)
        .read_to_end(&mut bytes)
        .ok()?;
    // A line that is not UTF-8 spoils only itself, not the whole file.
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The entries of a `passwd` or `group` file: (name, id). Comments, blank
/// lines and NIS `+`/`-` lines are not entries.
fn entries(text: &str) -> impl Iterator<Item = (&str, u32)> {
    text.lines().filter_map(|line| {
        if line.starts_with(['#', '+', '-']) {
            return None;
        }
        let mut f = line.split(':');
        let name = f.next().filter(|n| !n.is_empty())?;
        let _password = f.next()?;
        let id = f.next()?.trim().parse().ok()?;
        Some((name, id))
    })
}

#[cfg_attr(not(target_feature = "crt-static"), allow(dead_code))]
fn name_of(text: &str, id: u32) -> Option<String> {
    entries(text)
        .find(|(_, i)| *i == id)
        .map(|(n, _)| n.to_string())
}

#[cfg_attr(not(target_feature = "crt-static"), allow(dead_code))]
fn id_of(text: &str, name: &str) -> Option<u32> {
    entries(text).find(|(n, _)| *n == name).map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_read_as_the_c_library_reads_them() {
        let group =
            "# a comment\nroot:x:0:\n\n+nis\nstaff:x:50:alice,bob\nbad line\nworkers:*:1001:\n";
        assert_eq!(id_of(group, "staff"), Some(50));
        assert_eq!(id_of(group, "workers"), Some(1001));
        assert_eq!(id_of(group, "nis"), None);
        assert_eq!(id_of(group, "+nis"), None);
        assert_eq!(id_of(group, "bad line"), None);
        assert_eq!(name_of(group, 0).as_deref(), Some("root"));
        assert_eq!(name_of(group, 7), None);
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(name_of(passwd, 1000).as_deref(), Some("alice"));
    }

    #[test]
    fn this_build_finds_root() {
        // Both ways of reading agree on the one account every system has.
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_name(0).as_deref(), Some("root"));
    }
}
