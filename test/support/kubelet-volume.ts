// The kubelet-style atomic volume writer lives with the netns pod runtime (the demo uses it too).
export { kubeletWrite } from '../../src/dev/netns/kubelet-volume.ts';
