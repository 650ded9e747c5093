//! `vagrant/Vagrantfile` makes the VMs that `inventory/vagrant.yaml` describes, and nothing else.
//!
//! Vagrant is not needed: the Vagrantfile runs under plain Ruby with a small stub of the
//! `Vagrant.configure` DSL (below) that records the machines, networks, providers, provisioners and
//! triggers it defines, one `key=value` line each. The test compares that with the inventory as kbs loads it. Nothing
//! here starts a VM or sends a packet: the opt-in `kbs apply` trigger is fired against a fake `kbs`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kbs_inventory::{Inventory, Loader, Role};
use tempfile::TempDir;

/// The part of Vagrant's Vagrantfile DSL the kbs Vagrantfile uses, recording instead of doing.
///
/// Usage: `ruby stub.rb VAGRANTFILE [fire-trigger]`. With `fire-trigger`, the first recorded trigger's
/// Ruby block runs with a fake environment in which the machines named by `STUB_RUNNING` are running.
const VAGRANT_STUB: &str = r##"
# Records `name = value`; an unknown reader returns a nested recorder, as Vagrant's config does.
class Recorder
  attr_reader :values
  def initialize
    @values = {}
  end
  def method_missing(name, *args, &block)
    key = name.to_s
    if key.end_with?("=") && args.size == 1 && block.nil?
      @values[key.chomp("=")] = args[0]
    elsif args.empty? && block.nil? && !key.end_with?("?", "!", "=")
      @values[key] ||= Recorder.new
    else
      raise NoMethodError, "the Vagrant stub does not know #{name}(#{args.inspect})"
    end
  end
  def respond_to_missing?(*)
    true
  end
end

class TriggerRecorder < Recorder
  attr_reader :block
  def ruby(&block)
    @values["ruby"] = true
    @block = block
  end
end

class TriggerConfig
  def initialize(record)
    @record = record
  end
  def after(*events, &block)
    trigger = TriggerRecorder.new
    block.call(trigger)
    @record << { "when" => "after", "events" => events.map(&:to_s), "settings" => trigger }
  end
  def before(*)
    raise "the kbs Vagrantfile has no before triggers"
  end
end

class VmConfig < Recorder
  def initialize(machine, machines, triggers)
    super()
    @machine = machine
    @machines = machines
    @triggers = triggers
  end
  def define(name, options = {}, &block)
    raise "define inside define" if @machine
    machine = {
      "name" => name.to_s, "autostart" => options.fetch(:autostart, true),
      "networks" => [], "providers" => {}, "provisioners" => [], "settings" => nil,
    }
    inner = Config.new(machine, @machines, @triggers)
    block.call(inner)
    machine["settings"] = inner.vm
    @machines << machine
  end
  def network(type, options = {})
    raise "network outside define" unless @machine
    @machine["networks"] << { "type" => type.to_s, "options" => options }
  end
  def provider(name, &block)
    raise "provider outside define" unless @machine
    settings = Recorder.new
    block.call(settings, Recorder.new)
    @machine["providers"][name.to_s] = settings
  end
  def provision(type, options = {})
    raise "provision outside define" unless @machine
    @machine["provisioners"] << { "type" => type.to_s, "options" => options }
  end
  def synced_folder(source, destination, options = {})
    @values["synced_folders"] ||= []
    @values["synced_folders"] << { "source" => source, "destination" => destination, "options" => options }
  end
end

class Config
  attr_reader :vm, :trigger
  def initialize(machine, machines, triggers)
    @vm = VmConfig.new(machine, machines, triggers)
    @trigger = TriggerConfig.new(triggers)
  end
end

module Vagrant
  RECORD = { "machines" => [], "triggers" => [], "settings" => nil }
  def self.require_version(*requirements)
    RECORD["require_version"] = requirements
  end
  def self.configure(version)
    raise "Vagrant.configure(#{version.inspect}): the stub knows version 2" unless version.to_s == "2"
    config = Config.new(nil, RECORD["machines"], RECORD["triggers"])
    yield config
    RECORD["settings"] = config.vm
  end
end

FakeState = Struct.new(:id)
class FakeUi
  def info(message)
    $stderr.puts("info: #{message}")
  end
  def warn(message)
    $stderr.puts("warn: #{message}")
  end
end
class FakeMachine
  attr_reader :name, :provider_name, :ui
  def initialize(name)
    @name = name
    @provider_name = :virtualbox
    @ui = FakeUi.new
  end
  def state
    running = (ENV["STUB_RUNNING"] || "").split(",")
    FakeState.new(running.include?(@name.to_s) ? :running : :poweroff)
  end
end
class FakeEnv
  def machine(name, provider)
    raise "asked for #{name.inspect} under #{provider.inspect}" unless name.is_a?(Symbol) && provider == :virtualbox
    FakeMachine.new(name)
  end
end

load ARGV.fetch(0)
if ARGV[1] == "fire-trigger"
  trigger = Vagrant::RECORD["triggers"].fetch(0)["settings"]
  trigger.block.call(FakeEnv.new, FakeMachine.new(trigger.values["only_on"].to_sym))
end
# One `key=value` line per recorded value; `\` and newlines in values are escaped.
def flatten(prefix, value, out)
  case value
  when Recorder then flatten(prefix, value.values, out)
  when Hash then value.each { |key, inner| flatten("#{prefix}.#{key}", inner, out) }
  when Array
    out << ["#{prefix}.count", value.size.to_s]
    value.each_with_index { |inner, index| flatten("#{prefix}.#{index}", inner, out) }
  else out << [prefix, value.to_s]
  end
end
out = [["machines", Vagrant::RECORD["machines"].map { |m| m["name"] }.join(",")]]
Vagrant::RECORD["machines"].each { |machine| flatten("machine.#{machine['name']}", machine, out) }
flatten("settings", Vagrant::RECORD["settings"], out)
flatten("triggers", Vagrant::RECORD["triggers"], out)
out.each { |key, value| puts "#{key}=#{value.gsub('\\') { '\\\\' }.gsub("\n", '\\n')}" }
"##;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn vagrantfile() -> PathBuf {
    repo_root().join("vagrant/Vagrantfile")
}

fn reference_inventory() -> PathBuf {
    repo_root().join("inventory/vagrant.yaml")
}

fn ruby() -> Command {
    let found = Command::new("ruby").arg("--version").output();
    if !matches!(&found, Ok(output) if output.status.success()) {
        panic!("`ruby` is not installed; run scripts/install-deps (as root) to install it");
    }
    Command::new("ruby")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What the Vagrantfile defined: the stub's `key=value` lines, such as
/// `machine.host01.providers.libvirt.memory=2048` or `triggers.0.settings.only_on=host04`.
struct Record(BTreeMap<String, String>);

impl Record {
    fn parse(stdout: &[u8]) -> Record {
        let text = String::from_utf8(stdout.to_vec()).unwrap();
        let lines = text.lines().map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("stub line {line:?}"));
            (key.to_string(), unescape(value))
        });
        Record(lines.collect())
    }

    fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("the Vagrantfile set no {key}; it set {:#?}", self.0))
    }

    fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    fn number(&self, key: &str) -> u64 {
        let value = self.get(key);
        value
            .parse()
            .unwrap_or_else(|_| panic!("{key}={value} is not a number"))
    }

    fn machines(&self) -> Vec<&str> {
        self.get("machines")
            .split(',')
            .filter(|name| !name.is_empty())
            .collect()
    }
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// One VM as the Vagrantfile defines it; CPUs and memory as each provider has them.
#[derive(Debug, PartialEq, Eq)]
struct Vm {
    name: String,
    address: String,
    autostart: bool,
    cpus: BTreeSet<u64>,
    memory: BTreeSet<u64>,
}

fn vms(record: &Record) -> Vec<Vm> {
    record
        .machines()
        .into_iter()
        .map(|name| {
            let machine = format!("machine.{name}");
            assert_eq!(
                record.get(&format!("{machine}.networks.count")),
                "1",
                "one network on {name}"
            );
            assert_eq!(
                record.get(&format!("{machine}.networks.0.type")),
                "private_network"
            );
            let providers = ["virtualbox", "libvirt"];
            for provider in providers {
                assert!(
                    record.has(&format!("{machine}.providers.{provider}.cpus")),
                    "{name} has no {provider} settings"
                );
            }
            let numbers = |key: &str| -> BTreeSet<u64> {
                providers
                    .iter()
                    .map(|provider| record.number(&format!("{machine}.providers.{provider}.{key}")))
                    .collect()
            };
            Vm {
                name: name.to_string(),
                address: record
                    .get(&format!("{machine}.networks.0.options.ip"))
                    .to_string(),
                autostart: record.get(&format!("{machine}.autostart")) == "true",
                cpus: numbers("cpus"),
                memory: numbers("memory"),
            }
        })
        .collect()
}

/// A fake home, the stub, and the environment the Vagrantfile runs in.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = TempDir::new().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::write(dir.path().join("stub.rb"), VAGRANT_STUB).unwrap();
        Sandbox { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn identity_file(&self) -> PathBuf {
        self.home().join(".vagrant.d/kbs_ed25519")
    }

    /// Runs the Vagrantfile under the stub; `env` adds variables (KBS_INVENTORY, KBS_APPLY, …).
    fn run(&self, env: &[(&str, &str)], extra: &[&str]) -> Output {
        let mut command = ruby();
        command
            .arg(self.dir.path().join("stub.rb"))
            .arg(vagrantfile())
            .args(extra)
            .current_dir(self.dir.path())
            .env("HOME", self.home());
        for name in [
            "KBS",
            "KBS_APPLY",
            "KBS_INVENTORY",
            "KBS_LATER_HOSTS",
            "KBS_BOX",
            "KBS_BOX_VERSION",
            "KBS_VM_CPUS",
            "KBS_VM_MEMORY",
            "VAGRANT_NO_PARALLEL",
        ] {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        command.output().unwrap()
    }

    /// What the Vagrantfile defines, or a panic showing Ruby's error.
    fn record(&self, env: &[(&str, &str)]) -> Record {
        let output = self.run(env, &[]);
        assert!(
            output.status.success(),
            "the Vagrantfile failed under the stub:\n{}",
            stderr(&output)
        );
        Record::parse(&output.stdout)
    }

    /// The inventory at `path` as kbs loads it, with `~` in this sandbox's home.
    fn load(&self, path: &Path) -> Inventory {
        Loader::new()
            .home_dir(self.home())
            .load(path)
            .unwrap_or_else(|error| panic!("kbs refuses {}: {error}", path.display()))
            .inventory
    }

    /// A copy of the reference inventory with the first `from` replaced by `to`.
    fn inventory_copy(&self, name: &str, from: &str, to: &str) -> PathBuf {
        let text = std::fs::read_to_string(reference_inventory()).unwrap();
        assert!(text.contains(from), "the reference inventory has no `{from}`");
        let path = self.dir.path().join(name);
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        path
    }
}

#[test]
fn the_vagrantfile_is_valid_ruby() {
    let output = ruby().arg("-c").arg(vagrantfile()).output().unwrap();
    assert!(output.status.success(), "ruby -c: {}", stderr(&output));
}

#[test]
fn the_vms_are_the_hosts_of_the_inventory() {
    let sandbox = Sandbox::new();
    // kbs requires the identity file to exist; the Vagrantfile must keep the one it finds.
    let key = sandbox.identity_file();
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, "private\n").unwrap();
    std::fs::write(
        key.with_extension("pub"),
        "ssh-ed25519 AAAAplaceholder kbs@test\n",
    )
    .unwrap();
    let inventory = sandbox.load(&reference_inventory());
    let record = sandbox.record(&[]);
    let vms = vms(&record);

    let from_inventory: Vec<(&str, &str)> = inventory
        .hosts
        .iter()
        .map(|host| (host.name.as_str(), host.address.as_str()))
        .collect();
    let from_vagrant: Vec<(&str, &str)> = vms
        .iter()
        .map(|vm| (vm.name.as_str(), vm.address.as_str()))
        .collect();
    assert_eq!(from_vagrant, from_inventory);
    assert_eq!(
        from_vagrant,
        [
            ("host01", "192.168.61.11"),
            ("host02", "192.168.61.12"),
            ("host03", "192.168.61.13"),
            ("host04", "192.168.61.14"),
            ("host05", "192.168.61.15"),
        ],
        "the book's lab"
    );
    let vip = inventory.cluster.endpoint.address.as_deref();
    assert_eq!(vip, Some("192.168.61.10"));
    assert!(
        vms.iter().all(|vm| Some(vm.address.as_str()) != vip),
        "no VM takes the VIP"
    );
    for vm in &vms {
        let netmask = record.get(&format!("machine.{}.networks.0.options.netmask", vm.name));
        assert_eq!(netmask, "255.255.255.0", "the inventory's hostSubnet is a /24");
        let hostname = record.get(&format!("machine.{}.settings.hostname", vm.name));
        assert_eq!(hostname, vm.name, "the node name is the inventory's");
    }

    let started: Vec<&str> = vms
        .iter()
        .filter(|vm| vm.autostart)
        .map(|vm| vm.name.as_str())
        .collect();
    assert_eq!(
        started,
        ["host01", "host02", "host03", "host04"],
        "host05 waits for `vagrant up host05`"
    );

    let roles: Vec<(&str, &[Role])> = inventory
        .hosts
        .iter()
        .map(|host| (host.name.as_str(), host.roles.as_slice()))
        .collect();
    assert_eq!(
        roles
            .iter()
            .filter(|(_, r)| r.contains(&Role::ControlPlane))
            .count(),
        3
    );
    assert_eq!(roles[3], ("host04", &[Role::Worker][..]));
    assert_eq!(roles[4], ("host05", &[Role::Worker][..]));
    for vm in &vms {
        assert_eq!(vm.cpus.len(), 1, "VirtualBox and libvirt agree: {vm:?}");
        assert_eq!(vm.memory.len(), 1, "VirtualBox and libvirt agree: {vm:?}");
        // The book's size, and kubeadm's NumCPU and Mem preflight on control planes.
        let (cpus, memory) = (vm.cpus.first().unwrap(), vm.memory.first().unwrap());
        assert!(*cpus >= 2 && *memory >= 2048, "{vm:?}");
    }

    assert_eq!(record.get("settings.box"), "bento/ubuntu-24.04");
    assert_eq!(record.get("settings.synced_folders.0.options.disabled"), "true");
    assert_eq!(
        record.get("triggers.count"),
        "0",
        "no kbs apply without KBS_APPLY=1"
    );
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        "private\n",
        "the key is not replaced"
    );
}

#[test]
fn every_vm_gets_the_public_half_of_the_inventory_key() {
    let sandbox = Sandbox::new();
    let key = sandbox.identity_file();
    assert!(!key.exists());
    let record = sandbox.record(&[]);

    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the private key is private: {mode:o}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let public = public.trim();
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    // The inventory names this key, so kbs accepts it now that it exists.
    let inventory = sandbox.load(&reference_inventory());
    assert_eq!(inventory.ssh.identity_file.as_deref(), Some(key.as_path()));

    let script_path = sandbox.dir.path().join("authorize.sh");
    for name in record.machines() {
        let provisioners = format!("machine.{name}.provisioners");
        assert_eq!(record.get(&format!("{provisioners}.count")), "1", "{name}");
        assert_eq!(record.get(&format!("{provisioners}.0.type")), "shell");
        let options = format!("{provisioners}.0.options");
        assert_eq!(record.get(&format!("{options}.args.count")), "2");
        assert_eq!(
            record.get(&format!("{options}.args.0")),
            "vagrant",
            "the inventory's ssh.user"
        );
        assert_eq!(record.get(&format!("{options}.args.1")), public);
        let script = record.get(&format!("{options}.inline"));
        assert!(
            script.lines().any(|line| line.starts_with("grep -qxF")),
            "{script}"
        );
        std::fs::write(&script_path, script).unwrap();
        let syntax = Command::new("sh").arg("-n").arg(&script_path).output().unwrap();
        assert!(syntax.status.success(), "sh -n: {}", stderr(&syntax));
    }

    // Made once: a second load keeps the key.
    sandbox.record(&[]);
    let again = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    assert_eq!(again.trim(), public);
}

#[test]
fn the_inventory_is_the_one_source_of_truth() {
    let sandbox = Sandbox::new();
    let moved = sandbox.inventory_copy("moved.yaml", "192.168.61.12", "192.168.61.22");
    let record = sandbox.record(&[("KBS_INVENTORY", moved.to_str().unwrap())]);
    let inventory = sandbox.load(&moved);
    let host02 = vms(&record).into_iter().find(|vm| vm.name == "host02").unwrap();
    assert_eq!(host02.address, "192.168.61.22");
    assert_eq!(inventory.host("host02").unwrap().address, host02.address);

    let renamed = sandbox.inventory_copy("renamed.yaml", "name: host04", "name: node04");
    let record = sandbox.record(&[("KBS_INVENTORY", renamed.to_str().unwrap())]);
    assert_eq!(
        record.machines(),
        ["host01", "host02", "host03", "node04", "host05"]
    );

    let record = sandbox.record(&[("KBS_VM_MEMORY", "4096"), ("KBS_VM_CPUS", "3")]);
    assert!(vms(&record)
        .iter()
        .all(|vm| vm.memory == BTreeSet::from([4096]) && vm.cpus == BTreeSet::from([3])));
}

#[test]
fn a_missing_inventory_or_address_is_a_clear_error() {
    let sandbox = Sandbox::new();
    let missing = sandbox.dir.path().join("nowhere.yaml");
    let output = sandbox.run(&[("KBS_INVENTORY", missing.to_str().unwrap())], &[]);
    assert!(!output.status.success());
    let expected = format!("the inventory {} is missing", missing.display());
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));

    let no_address = sandbox.inventory_copy("no-address.yaml", "    address: 192.168.61.12\n", "");
    let output = sandbox.run(&[("KBS_INVENTORY", no_address.to_str().unwrap())], &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("host host02 has no address"),
        "{}",
        stderr(&output)
    );

    let dns = sandbox.inventory_copy("dns.yaml", "192.168.61.13", "host03.example.org");
    let output = sandbox.run(&[("KBS_INVENTORY", dns.to_str().unwrap())], &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("a VM needs an IPv4 address"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn kbs_apply_runs_after_the_last_default_vm_only_when_asked() {
    let sandbox = Sandbox::new();
    let calls = sandbox.dir.path().join("kbs-calls");
    let fake_kbs = recording_kbs(&sandbox, &calls);
    let env = [("KBS_APPLY", "1"), ("KBS", fake_kbs.to_str().unwrap())];

    let record = sandbox.record(&env);
    assert_eq!(record.get("triggers.count"), "1");
    assert_eq!(record.get("triggers.0.when"), "after");
    assert_eq!(record.get("triggers.0.events.count"), "1");
    assert_eq!(record.get("triggers.0.events.0"), "up");
    assert_eq!(record.get("triggers.0.settings.only_on"), "host04");
    assert_eq!(record.get("triggers.0.settings.ruby"), "true");

    // host05 is not started by `vagrant up`, so it does not hold the apply back.
    let all_up = [&env[..], &[("STUB_RUNNING", "host01,host02,host03,host04")]].concat();
    let output = sandbox.run(&all_up, &["fire-trigger"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let inventory = std::fs::canonicalize(reference_inventory()).unwrap();
    let called = std::fs::read_to_string(&calls).unwrap();
    let canonical = |arg: &str| {
        std::fs::canonicalize(arg)
            .map(|p| p.display().to_string())
            .unwrap_or(arg.to_string())
    };
    let args: Vec<String> = called.lines().map(canonical).collect();
    assert_eq!(
        args,
        [
            "apply".to_string(),
            inventory.display().to_string(),
            "--hosts".to_string(),
            "host01,host02,host03,host04".to_string(),
            "--accept-new-host-keys".to_string()
        ],
        "the first apply leaves host05 out; it joins later with `kbs join`"
    );
    assert!(
        stderr(&output).contains("--hosts host01,host02,host03,host04 --accept-new-host-keys"),
        "the trigger shows the command it runs: {}",
        stderr(&output)
    );

    std::fs::remove_file(&calls).unwrap();
    let one_down = [&env[..], &[("STUB_RUNNING", "host01,host03,host04")]].concat();
    let output = sandbox.run(&one_down, &["fire-trigger"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!calls.exists(), "kbs ran while host02 was down");
    assert!(
        stderr(&output).contains("host02 not running"),
        "{}",
        stderr(&output)
    );

    // A failed apply fails `vagrant up`, and a missing kbs says how to provide one.
    std::fs::write(&fake_kbs, "#!/bin/sh\nexit 1\n").unwrap();
    let output = sandbox.run(&all_up, &["fire-trigger"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("kbs apply exited 1"),
        "{}",
        stderr(&output)
    );
    let missing = sandbox.dir.path().join("no-kbs-here");
    let no_kbs = [&all_up[..], &[("KBS", missing.to_str().unwrap())]].concat();
    let output = sandbox.run(&no_kbs, &["fire-trigger"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("set KBS=/path/to/kbs"),
        "{}",
        stderr(&output)
    );
}

/// A fake `kbs` that appends each of its arguments, one per line, to `calls`.
fn recording_kbs(sandbox: &Sandbox, calls: &Path) -> PathBuf {
    let fake_kbs = sandbox.dir.path().join("kbs");
    std::fs::write(
        &fake_kbs,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" >> {}\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake_kbs, std::fs::Permissions::from_mode(0o755)).unwrap();
    fake_kbs
}

#[test]
fn the_trigger_applies_only_the_hosts_vagrant_up_started() {
    let sandbox = Sandbox::new();
    let calls = sandbox.dir.path().join("kbs-calls");
    let fake_kbs = recording_kbs(&sandbox, &calls);
    // The reference inventory on loopback addresses with a closed SSH port: the real kbs below can
    // try every host it selects and learn in milliseconds that nothing answers, without a packet
    // leaving this machine.
    let text = std::fs::read_to_string(reference_inventory()).unwrap();
    assert!(text.contains("  sudo: true\n"));
    let loopback = sandbox.dir.path().join("loopback.yaml");
    std::fs::write(
        &loopback,
        text.replace("192.168.61.", "127.0.61.")
            .replace("  sudo: true\n", "  sudo: true\n  port: 1\n"),
    )
    .unwrap();
    let env = [
        ("KBS_APPLY", "1"),
        ("KBS", fake_kbs.to_str().unwrap()),
        ("KBS_INVENTORY", loopback.to_str().unwrap()),
        ("STUB_RUNNING", "host01,host02,host03,host04"),
    ];
    let output = sandbox.run(&env, &["fire-trigger"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let args: Vec<String> = std::fs::read_to_string(&calls)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        args.iter().all(|arg| !arg.contains("host05")),
        "host05 is not running yet: {args:?}"
    );

    // The real kbs takes that command line as it is and works on host01..host04 only: its closing
    // summary names those four, each unreachable here, and nothing else.
    let run = Command::new(env!("CARGO_BIN_EXE_kbs"))
        .args(["--output", "json", "--connect-timeout", "5s"])
        .args(&args)
        .env("HOME", sandbox.home())
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert_eq!(run.status.code(), Some(1), "{stdout}\n{}", stderr(&run));
    let summary: serde_json::Value = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .rfind(|event| event["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary from kbs:\n{stdout}\n{}", stderr(&run)));
    let hosts: Vec<&str> = summary["hosts"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(hosts, ["host01", "host02", "host03", "host04"], "{summary}");
    assert!(!stdout.contains("host05"), "{stdout}");

    // With no later hosts, `vagrant up` starts all five, the trigger waits for host05, and apply
    // needs no --hosts.
    std::fs::remove_file(&calls).unwrap();
    let none_later = [
        ("KBS_APPLY", "1"),
        ("KBS", fake_kbs.to_str().unwrap()),
        ("KBS_LATER_HOSTS", ""),
    ];
    let record = sandbox.record(&none_later);
    assert_eq!(record.get("triggers.0.settings.only_on"), "host05");
    let all_five = [
        &none_later[..],
        &[("STUB_RUNNING", "host01,host02,host03,host04,host05")],
    ]
    .concat();
    let output = sandbox.run(&all_five, &["fire-trigger"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let called = std::fs::read_to_string(&calls).unwrap();
    let args: Vec<&str> = called.lines().collect();
    assert_eq!(args.len(), 3, "{args:?}");
    assert_eq!((args[0], args[2]), ("apply", "--accept-new-host-keys"));
}
