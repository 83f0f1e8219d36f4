# Builds small torch.save-layout .pth fixtures without torch: fake `torch` / `torch._utils` modules
# make the standard pickler emit the same GLOBAL / BINPERSID / REDUCE opcodes as torch.save.
import sys, types, pickle, zipfile, collections, numpy as np
torch = types.ModuleType('torch'); utils = types.ModuleType('torch._utils')
torch._utils = utils; sys.modules['torch'] = torch; sys.modules['torch._utils'] = utils
def _rebuild_tensor_v2(*a): pass
def _rebuild_parameter(*a): pass
_rebuild_tensor_v2.__module__ = _rebuild_parameter.__module__ = 'torch._utils'
utils._rebuild_tensor_v2 = _rebuild_tensor_v2; utils._rebuild_parameter = _rebuild_parameter
STORAGE = {np.float32: 'FloatStorage', np.float16: 'HalfStorage', np.float64: 'DoubleStorage', np.int64: 'LongStorage'}
for n in STORAGE.values():
    c = type(n, (), {}); c.__module__ = 'torch'; setattr(torch, n, c)
class Storage:
    def __init__(s, key, arr): s.key, s.arr = key, arr
class Tensor:
    def __init__(s, storage, offset, size, stride, param=False):
        s.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict()); s.param = param
    def __reduce__(s):
        t = (_rebuild_tensor_v2, s.args)
        if s.param:
            inner = Tensor.__new__(Tensor); inner.args = s.args; inner.param = False
            return (_rebuild_parameter, (inner, False, collections.OrderedDict()))
        return t
def write(path, obj, storages, folder='archive'):
    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, Storage):
                return ('storage', getattr(torch, STORAGE[o.arr.dtype.type]), o.key, 'cpu', o.arr.size)
            return None
    import io; buf = io.BytesIO(); P(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        z.writestr(folder + '/data.pkl', buf.getvalue())
        z.writestr(folder + '/byteorder', 'little')
        for s in storages: z.writestr(folder + '/data/' + s.key, s.arr.tobytes())
        z.writestr(folder + '/version', '3\n')
out = sys.argv[1]
s0 = Storage('0', np.arange(24, dtype=np.float32) * 0.5 - 3)          # 24 floats
s1 = Storage('1', np.array([3, -1, 7, 1 << 40], dtype=np.int64))
s2 = Storage('2', np.array([1.5, -2.25, 65504, 6.1035156e-05, 5.96e-08], dtype=np.float16))
s3 = Storage('3', np.array([0.1, -1e-3, 1e10], dtype=np.float64))
bare = collections.OrderedDict()
bare['weight'] = Tensor(s0, 0, (2, 3, 4), (12, 4, 1), param=True)     # contiguous, via _rebuild_parameter
bare['transposed'] = Tensor(s0, 2, (3, 2), (1, 5))                    # strided view with offset
bare['index'] = Tensor(s1, 0, (2, 2), (2, 1))
bare['half'] = Tensor(s2, 0, (5,), (1,))
bare['double'] = Tensor(s3, 0, (3,), (1,))
bare['scalar'] = Tensor(s0, 7, (), ())
write(out + '/bare_state_dict.pth', bare, [s0, s1, s2, s3], folder='bare_state_dict')
only = {'params': collections.OrderedDict([('a', Tensor(s0, 0, (4,), (1,))), ('b', Tensor(s1, 1, (2,), (1,)))])}
write(out + '/params_only.pth', only, [s0, s1], folder='archive')
other = {'model': collections.OrderedDict([('a', Tensor(s0, 0, (4,), (1,)))]), 'epoch': 7}
write(out + '/other_keys.pth', other, [s0], folder='ckpt')
