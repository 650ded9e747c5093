//! Simulated kubeadm, kubelet, kubectl, kube-apiserver and kube-vip for the lab.
