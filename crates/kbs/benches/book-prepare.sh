#!/bin/sh
# The baseline for benches/prepare.rs: host preparation as the book's k8s-all loop does it, one shell
# script run as root on every host over OpenSSH. It is what kbs replaces; kept equivalent to
# playbooks/prepare.yaml (same packages, files, sysctls and services) so the timings compare.
# $1 is the package repository base URL, $2 the Kubernetes minor (e.g. 1.36).
set -eu
repo=$1 minor=$2
export DEBIAN_FRONTEND=noninteractive
modprobe overlay && modprobe br_netfilter
printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/kubernetes.conf
printf 'net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n' \
  > /etc/sysctl.d/99-kubernetes.conf
sysctl --system > /dev/null
swapoff -a && sed -i '/\sswap\s/ s/^#*/#/' /etc/fstab
apt-get update -q > /dev/null
apt-get install -y -q ca-certificates curl gpg conntrack socat iptables ethtool open-iscsi nfs-common > /dev/null
mkdir -p /etc/apt/keyrings
curl -fsSL "$repo/core:/stable:/v$minor/deb/Release.key" | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $repo/core:/stable:/v$minor/deb/ /" \
  > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q > /dev/null
apt-get install -y -q containerd kubelet kubeadm kubectl > /dev/null
apt-mark hold kubelet kubeadm kubectl > /dev/null
mkdir -p /etc/containerd
cat > /etc/containerd/config.toml <<'TOML'
version = 3
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = 'registry.k8s.io/pause:3.10.1'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
TOML
printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\n' \
  > /etc/crictl.yaml
systemctl restart containerd
systemctl enable kubelet > /dev/null 2>&1
systemctl enable --now iscsid > /dev/null 2>&1
