#!/usr/bin/env bash
# Data-parallel training on this machine: the paper configuration, global batch 4, 4 iterations,
# as 1 process with every core and as 2 MPI ranks sharing them (threads divided), then checks that
# the two runs' checkpoints are bit-identical. Prints the step times of iterations 2-4, the bytes
# rank 0 sent per step and each run's peak RSS. Needs openmpi-bin, python3 with numpy, and a
# release build (swift build -c release). Benchmarks/README.md, "Data-parallel training".
#   tools/mpi_timing.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
G=$PWD/.build/release/gsasr
W=${1:-/tmp/gsasr-mpi-timing}
rm -rf "$W" && mkdir -p "$W/photos"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
python3 - "$W" <<'PY'
import numpy as np, zlib, struct, sys
w = sys.argv[1]
def png(path, a):
    h, wd, _ = a.shape
    raw = b''.join(b'\0' + a[y].tobytes() for y in range(h))
    ch = lambda k, d: struct.pack('>I', len(d)) + k + d + struct.pack('>I', zlib.crc32(k + d))
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + ch(b'IHDR', struct.pack('>IIBBBBB', wd, h, 8, 2, 0, 0, 0))
                           + ch(b'IDAT', zlib.compress(raw)) + ch(b'IEND', b''))
rng = np.random.default_rng(1)
for k in range(3):
    y, x, c = np.meshgrid(np.arange(400), np.arange(400), np.arange(3), indexing='ij')
    a = 255 * (0.5 + 0.3 * np.sin(x * 0.21 * (k + 1) + c) * np.cos(y * 0.17) + 0.15 * np.sin(x * y * 0.003))
    png(f'{w}/photos/p{k}.png', np.clip(a + rng.normal(0, 8, x.shape), 0, 255).astype(np.uint8))
open(f'{w}/paper.yml', 'w').write(f'''name: paper
manual_seed: 10
datasets:
  train:
    all_gt_list: ['{w}/photos']
    lr_size: 48
    scale_list: [1.0, 4.0]
    batch_size_per_gpu: 4
    downscale: 1
train:
  init_alpha_bias: -3.0
  optim_g: {{type: Adam, lr: !!float 2e-4}}
  total_iter: 4
logger:
  print_freq: 1
  save_checkpoint_freq: 1000
''')
PY
cd "$W"
/usr/bin/time -v -o one.time "$G" train paper.yml --run one > one.log
mpirun --oversubscribe -np 2 sh -c "/usr/bin/time -v -o two.time.\$OMPI_COMM_WORLD_RANK $G train paper.yml --run two --global-batch 4" > two.log
python3 - <<'PY'
import json, struct, re
def steps(run):
    it = [json.loads(l) for l in open(f'{run}/log.jsonl') if '"loss"' in l]
    return [round(1 / x['it_per_s'], 2) for x in it[1:]], it[-1].get('bytes_sent_rank0')
def rss(f):
    return int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', open(f).read()).group(1)) / 1e6
def tensors(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
    return {k: b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]] for k, v in h.items()}
(s1, _), (s2, sent) = steps('one'), steps('two')
print(f'1 process x all cores: steps {s1} s, peak RSS {rss("one.time"):.2f} GB')
print(f'2 ranks: steps {s2} s (ratio {sum(s2) / sum(s1):.2f}), bytes sent by rank 0 per step {sent}, '
      f'peak RSS {rss("two.time.0"):.2f} / {rss("two.time.1"):.2f} GB')
a, b = tensors('one/checkpoint.safetensors'), tensors('two/checkpoint.safetensors')
print('checkpoints:', 'bit-identical' if a == b else f'{sum(a[k] != b.get(k) for k in a)} of {len(a)} tensors differ', f'({len(a)} tensors)')
PY
