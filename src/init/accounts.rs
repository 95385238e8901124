//! The users and groups of the root filesystem (`/etc/passwd`,
//! `/etc/group`), read without NSS so that a test root works the same way.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    /// Supplementary groups (from `/etc/group`), the primary one included.
    pub groups: Vec<u32>,
}

/// Finds `name` in passwd and group text.
pub fn find_user(passwd: &str, group: &str, name: &str) -> Option<User> {
    let fields: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))?;
    let uid = fields.get(2)?.parse().ok()?;
    let gid = fields.get(3)?.parse().ok()?;
    let home = fields.get(5).unwrap_or(&"/").to_string();
    let mut groups = vec![gid];
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let (Some(g), Some(members)) = (f.get(2).and_then(|g| g.parse().ok()), f.get(3)) else {
            continue;
        };
        if members.split(',').any(|m| m.trim() == name) && !groups.contains(&g) {
            groups.push(g);
        }
    }
    Some(User {
        name: name.to_string(),
        uid,
        gid,
        home,
        groups,
    })
}

/// The id of group `name`.
pub fn find_group(group: &str, name: &str) -> Option<u32> {
    group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2).and_then(|g| g.parse().ok()))
}

/// Reads `etc/passwd` and `etc/group` under `root`.
pub fn read(root: &Path) -> (String, String) {
    (
        std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default(),
        std::fs::read_to_string(root.join("etc/group")).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shipped_overlay() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlay");
        let (passwd, group) = read(&dir);
        let b = find_user(&passwd, &group, "babymon").unwrap();
        let video = find_group(&group, "video").unwrap();
        let audio = find_group(&group, "audio").unwrap();
        assert!(b.uid >= 100 && b.uid != 0);
        assert!(b.groups.contains(&video) && b.groups.contains(&audio));
        let c = find_user(&passwd, &group, "cloudflared").unwrap();
        assert!(c.uid != 0 && c.uid != b.uid);
        assert!(!c.groups.contains(&video), "the tunnel needs no camera");
        assert_eq!(find_user(&passwd, &group, "root").map(|u| u.uid), Some(0));
    }

    #[test]
    fn odd_lines_are_skipped() {
        let passwd = "bad\nx:x:notanumber:1::/:/bin/sh\nok:x:5:6::/home/ok:/bin/sh\n";
        let group = "g:x:7:ok,other\nbroken\nh:x:8:\n";
        assert_eq!(find_user(passwd, group, "x"), None);
        let u = find_user(passwd, group, "ok").unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (5, 6, vec![6, 7]));
        assert_eq!(find_group(group, "h"), Some(8));
        assert_eq!(find_group(group, "nope"), None);
    }
}
