use super::*;
use crate::agent::Slot;

const MINIMAL: &str = r#"
[[component]]
id = ["rootfs"]
slot-a = { path = "/dev/vda" }
slot-b = { path = "/dev/vdb" }
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/suit-agent/config.toml"))
}

fn error(text: &str) -> (usize, Option<String>, String) {
    match parse(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(ConfigError::Invalid {
            line,
            field,
            message,
            ..
        }) => (line, field, message),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.channel_url, None);
    assert_eq!(config.poll_interval, Duration::from_secs(3600));
    assert_eq!(config.state_dir, Path::new("/data/suit-agent"));
    assert_eq!(config.staging_dir, Path::new("/data/suit-agent/staging"));
    assert_eq!(config.chunk_size.get(), 1024 * 1024);
    assert_eq!(config.http, HttpConfig::default());
    assert_eq!(config.retry, RetryPolicy::default());
    assert_eq!(
        config.boot,
        BootConfig::File(FileBootConfig {
            path: "/data/boot/bootstate".into()
        })
    );
    let component = &config.components[0];
    assert_eq!(component.id, ComponentId::new([b"rootfs"]));
    assert_eq!(component.target(Slot::A).component_slot, 0);
    assert_eq!(component.target(Slot::B).component_slot, 1);
    assert_eq!(component.target(Slot::B).path, Path::new("/dev/vdb"));
    assert_eq!(config.health_check, None);
    assert_eq!(config.report_url, None);
}

#[test]
fn example_file_parses() {
    let text = include_str!("../../../examples/agent-config.toml");
    let config = parse(text).unwrap();
    assert_eq!(
        config.channel_url.as_ref().map(Url::as_str),
        Some("https://updates.example.com/gateway/stable.suit")
    );
    assert_eq!(config.poll_interval, Duration::from_secs(6 * 3600));
    assert_eq!(config.http.ca_files.len(), 1);
    assert_eq!(config.retry.attempts.get(), 6);
    assert_eq!(config.retry.backoff(1), Duration::from_secs(2));
    assert_eq!(config.components.len(), 2);
    let BootConfig::UBoot(uboot) = &config.boot else {
        panic!("example uses the U-Boot backend: {:?}", config.boot)
    };
    assert_eq!(uboot.env_size, 0x20000);
    assert_eq!(uboot.primary.offset, 0x3c0000);
    assert_eq!(uboot.redundant.as_ref().map(|r| r.offset), Some(-131072));
    let check = config.health_check.as_ref().unwrap();
    assert_eq!(check.command[0], "/usr/libexec/gateway/health");
    assert_eq!(check.timeout, Duration::from_secs(120));
    assert!(config.report_url.is_some());
    let id = ComponentId::new([b"bootloader" as &[u8], &[0, 1]]);
    assert!(config.component(&id).is_some());
}

#[test]
fn every_section_can_be_set() {
    let text = format!(
        r#"
channel-url = "file:///media/usb/update.suit"
poll-interval = "90s"
state-dir = "/var/lib/suit-agent"
staging-dir = "/var/lib/suit-agent/staging"
chunk-size = 65536
report-url = "http://reports.example.com/in"
[http]
ca-files = ["/etc/suit-agent/ca.pem", "/etc/suit-agent/ca2.pem"]
system-roots = false
connect-timeout = "2s"
response-timeout = "3s"
read-timeout = "500ms"
[retry]
attempts = 1
initial-backoff = "100ms"
max-backoff = "300ms"
[boot]
backend = "file"
path = "/tmp/bootstate"
[health-check]
command = ["/bin/true"]
{MINIMAL}"#
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.poll_interval, Duration::from_secs(90));
    assert_eq!(config.chunk_size.get(), 65536);
    assert!(!config.http.system_roots);
    assert_eq!(config.http.read_timeout, Duration::from_millis(500));
    assert_eq!(config.retry.attempts.get(), 1);
    assert_eq!(
        config.boot,
        BootConfig::File(FileBootConfig {
            path: "/tmp/bootstate".into()
        })
    );
    assert_eq!(
        config.health_check.unwrap().timeout,
        Duration::from_secs(60)
    );
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let policy = RetryPolicy {
        attempts: NonZeroU32::MIN,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(700),
    };
    let waits: Vec<_> = (1..=5).map(|n| policy.backoff(n).as_millis()).collect();
    assert_eq!(waits, [100, 200, 400, 700, 700]);
    assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(700));
}

#[test]
fn unknown_field_names_line_and_field() {
    let (line, field, message) = error(&format!(
        "{MINIMAL}[http]\nconnect-timeout = \"1s\"\nproxy = \"x\"\n"
    ));
    assert_eq!(line, 8);
    assert_eq!(field.as_deref(), Some("http.proxy"));
    assert!(message.contains("unknown field `proxy`"), "{message}");
}

#[test]
fn bad_values_name_their_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("chunk-size = 100\n", "chunk-size", "out of range"),
        (
            "poll-interval = \"10 parsecs\"\n",
            "poll-interval",
            "invalid duration",
        ),
        (
            "poll-interval = \"0s\"\n",
            "poll-interval",
            "greater than zero",
        ),
        (
            "state-dir = \"relative/dir\"\n",
            "state-dir",
            "must be absolute",
        ),
        (
            "channel-url = \"ftp://x/y.suit\"\n",
            "channel-url",
            "scheme \"ftp\"",
        ),
        (
            "report-url = \"file:///tmp/r\"\n",
            "report-url",
            "scheme \"file\"",
        ),
        (
            "channel-url = \"not a url\"\n",
            "channel-url",
            "invalid URL",
        ),
        ("[retry]\nattempts = 0\n", "retry.attempts", "nonzero"),
        (
            "[http]\nca-files = [\"ca.pem\"]\n",
            "http.ca-files",
            "must be absolute",
        ),
        (
            "[health-check]\ncommand = []\n",
            "health-check.command",
            "needs a program",
        ),
    ];
    for (text, field, needle) in cases {
        let (line, got_field, message) = error(&format!("{text}{MINIMAL}"));
        assert_eq!(got_field.as_deref(), Some(*field), "{text}: {message}");
        assert!(message.contains(needle), "{text}: {message}");
        assert!(line <= 2, "{text}: line {line}");
    }
}

#[test]
fn components_are_checked() {
    let (line, _, message) = error("poll-interval = \"1m\"\n");
    assert_eq!(line, 1);
    assert!(message.contains("missing field `component`"), "{message}");

    let twice = format!("{MINIMAL}{}", MINIMAL.replace("/dev/vd", "/dev/sd"));
    let (line, field, message) = error(&twice);
    assert!(message.contains("configured twice"), "{message}");
    assert!(field.is_some_and(|f| f.starts_with("component")));
    assert!(line >= 2, "line {line}");

    let shared = format!(
        "{MINIMAL}{}",
        MINIMAL
            .replace("rootfs", "app")
            .replace("/dev/vda", "/dev/vdc")
    );
    let (_, _, message) = error(&shared);
    assert!(message.contains("share the path /dev/vdb"), "{message}");

    let same = MINIMAL.replace("/dev/vdb", "/dev/vda");
    let (line, field, message) = error(&same);
    assert!(message.contains("same path"), "{message}");
    assert_eq!(field.as_deref(), Some("component[0]"));
    assert_eq!(line, 2);

    let same_value = MINIMAL.replace(
        "path = \"/dev/vdb\"",
        "path = \"/dev/vdb\", component-slot = 0",
    );
    let (_, _, message) = error(&same_value);
    assert!(message.contains("same component-slot 0"), "{message}");

    let bad_hex = MINIMAL.replace("\"rootfs\"", "\"0xzz\"");
    let (line, field, message) = error(&bad_hex);
    assert!(message.contains("not valid hex"), "{message}");
    assert_eq!(field.as_deref(), Some("component[0].id"));
    assert_eq!(line, 3);
}

#[test]
fn boot_backends_are_strict() {
    let boot = |body: &str| error(&format!("{MINIMAL}[boot]\n{body}"));
    let (line, field, message) = boot("backend = \"grub\"\n");
    assert!(message.contains("unknown variant `grub`"), "{message}");
    assert_eq!(field.as_deref(), Some("boot.backend"));
    assert_eq!(line, 7);

    let (line, field, message) = boot("backend = \"file\"\npath = \"/x\"\nsize = 3\n");
    assert!(message.contains("unknown field `size`"), "{message}");
    assert_eq!(field.as_deref(), Some("boot.size"));
    assert_eq!(line, 9);

    let (line, field, message) =
        boot("backend = \"uboot\"\nenv-size = 8\nprimary = { device = \"/dev/mmcblk0\" }\n");
    assert!(
        message.contains("environment size 8 is out of range"),
        "{message}"
    );
    assert_eq!(field.as_deref(), Some("boot.env-size"));
    assert_eq!(line, 8);

    let (_, field, message) = boot(
        "backend = \"uboot\"\nenv-size = 16\nprimary = { device = \"/env\", offset = \"0\" }\n",
    );
    assert!(message.contains("invalid type"), "{message}");
    assert_eq!(field.as_deref(), Some("boot.primary.offset"));

    let (line, field, message) = boot("backend = \"uboot\"\nenv-size = 0x4000\n");
    assert!(
        message.contains("backend \"uboot\" needs `primary`"),
        "{message}"
    );
    assert_eq!(field.as_deref(), Some("boot"));
    assert_eq!(line, 6);

    let (_, _, message) = boot("backend = \"file\"\nenv-size = 0x4000\n");
    assert!(
        message.contains("`env-size` is a setting of backend \"uboot\""),
        "{message}"
    );
    let (_, _, message) =
        boot("backend = \"uboot\"\nenv-size = 64\nprimary = { device = \"/e\" }\npath = \"/p\"\n");
    assert!(
        message.contains("`path` is a setting of backend \"file\""),
        "{message}"
    );

    let config = parse(&format!(
        "{MINIMAL}[boot]\nbackend = \"uboot\"\nenv-size = 0x4000\nprimary = {{ device = \"/boot/uboot.env\" }}\n"
    ))
    .unwrap();
    assert_eq!(
        config.boot,
        BootConfig::UBoot(UBootEnvConfig {
            env_size: 0x4000,
            primary: EnvLocation {
                device: "/boot/uboot.env".into(),
                offset: 0
            },
            redundant: None,
            lock_file: "/var/lock/fw_printenv.lock".into(),
        })
    );
}

#[test]
fn syntax_errors_point_at_the_line() {
    let (line, _, message) = error("chunk-size = 4096\nstate-dir = \n");
    assert_eq!(line, 2);
    assert!(!message.is_empty());
    let err = parse("x = [").unwrap_err().to_string();
    assert!(err.starts_with("/etc/suit-agent/config.toml:1:"), "{err}");
}

#[test]
fn missing_file_names_the_file() {
    let err = Config::load(Path::new("/nonexistent/suit-agent.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/suit-agent.toml"));
}

#[test]
fn component_ids_use_the_spec_notation() {
    let id: ComponentId = serde_json::from_str(r#"["rootfs", "0x00ff", "0x"]"#).unwrap();
    assert_eq!(id.parts(), vec![b"rootfs".to_vec(), vec![0, 0xff], vec![]]);
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        r#"["rootfs","0x00ff","0x"]"#
    );
    let tricky = ComponentId::new([b"0x12"]);
    let text = serde_json::to_string(&tricky).unwrap();
    assert_eq!(text, r#"["0x30783132"]"#);
    assert_eq!(serde_json::from_str::<ComponentId>(&text).unwrap(), tricky);
    assert!(serde_json::from_str::<ComponentId>("[]").is_err());
    assert_eq!(id.to_string(), "['rootfs', h'00ff', h'']");
    assert_ne!(ComponentId::new([b"rootfs"]), id);
}
