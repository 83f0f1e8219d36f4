// The transforms of Winograd F(4×4, 3×3) (winograd43.c includes this file once per instruction
// set, with NAME() adding a suffix and, for AVX2, the target attribute applied to every function).
// Eight channels per vector; a last partial group goes through a zero-padded copy. Every value is
// a sum of products by the matrices' constants, each rounded on its own (FP_CONTRACT OFF in
// winograd43.c), so every instruction set gives the same bits.

static inline __attribute__((always_inline)) v8 NAME(ld)(const float *p) {
    v8 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void NAME(st)(float *p, v8 v) { __builtin_memcpy(p, &v, sizeof v); }

/// Loads 8 lanes, or n < 8 lanes and zeros.
static inline __attribute__((always_inline)) v8 NAME(ldn)(const float *p, long n) {
    if (n == 8) return NAME(ld)(p);
    float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (long i = 0; i < n; i++) t[i] = p[i];
    return NAME(ld)(t);
}

static inline __attribute__((always_inline)) void NAME(stn)(float *p, v8 v, long n) {
    if (n == 8) {
        NAME(st)(p, v);
        return;
    }
    float t[8];
    NAME(st)(t, v);
    for (long i = 0; i < n; i++) p[i] = t[i];
}

/// r = Bᵀ d for one column d0 … d5 (see winograd43.c for Bᵀ).
static inline __attribute__((always_inline)) void NAME(bt)(const v8 d[6], v8 r[6]) {
    const v8 four = V8(4), five = V8(5), two = V8(2);
    r[0] = (four * d[0] - five * d[2]) + d[4];
    r[1] = (d[3] + d[4]) - four * (d[1] + d[2]);
    r[2] = (d[4] - d[3]) + four * (d[1] - d[2]);
    r[3] = (d[4] - d[2]) + two * (d[3] - d[1]);
    r[4] = (d[4] - d[2]) - two * (d[3] - d[1]);
    r[5] = (four * d[1] - five * d[3]) + d[5];
}

/// r = Aᵀ m for one column m0 … m5.
static inline __attribute__((always_inline)) void NAME(at)(const v8 m[6], v8 r[4]) {
    const v8 two = V8(2), four = V8(4), eight = V8(8);
    const v8 a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    r[0] = (m[0] + a) + c;
    r[1] = b + two * d;
    r[2] = a + four * c;
    r[3] = (b + eight * d) + m[5];
}

/// r = G g for one column g0 … g2.
static inline __attribute__((always_inline)) void NAME(gt)(v8 g0, v8 g1, v8 g2, v8 r[6]) {
    const v8 q = V8(0.25f), s = V8(1.0f / 6.0f), t = V8(1.0f / 12.0f), u = V8(1.0f / 24.0f);
    const v8 e = g0 + g2;
    r[0] = q * g0;
    r[1] = -(s * (e + g1));
    r[2] = -(s * (e - g1));
    r[3] = (u * g0 + t * g1) + s * g2;
    r[4] = (u * g0 - t * g1) + s * g2;
    r[5] = g2;
}

static void NAME(weights)(const float *w, long cin, long cout, long co0, long co1, float *u) {
    const long plane = cin * cout;
    for (long co = co0; co < co1; co++) {
        const float *g = w + co * 9 * cin;
        for (long c = 0; c < cin; c += 8) {
            const long n = cin - c < 8 ? cin - c : 8;
            v8 col[3][6];  // col[kx] = G (column kx of g): (G g) by columns
            for (int kx = 0; kx < 3; kx++)
                NAME(gt)(NAME(ldn)(g + kx * cin + c, n), NAME(ldn)(g + (3 + kx) * cin + c, n),
                         NAME(ldn)(g + (6 + kx) * cin + c, n), col[kx]);
            for (int i = 0; i < 6; i++) {
                v8 r[6];
                NAME(gt)(col[0][i], col[1][i], col[2][i], r);  // row i of (G g) Gᵀ
                for (int j = 0; j < 6; j++) NAME(stn)(u + (i * 6 + j) * plane + co * cin + c, r[j], n);
            }
        }
    }
}

static void NAME(input)(const float *x, long h, long w, long cin, long tilesW, long ty0, long t0, long t1,
                        long stride, float *v, const float *zeros) {
    const float *s[36];
    for (long t = t0; t < t1; t++) {
        {
            const long ty = ty0 + t / tilesW, tx = t % tilesW;
            for (int k = 0; k < 36; k++) {
                const long yy = 4 * ty - 1 + k / 6, xx = 4 * tx - 1 + k % 6;
                s[k] = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? x + (yy * w + xx) * cin : zeros;
            }
            float *out = v + t * cin;
            for (long c = 0; c < cin; c += 8) {
                const long n = cin - c < 8 ? cin - c : 8;
                v8 t[6][6];  // t = Bᵀ d, by columns
                for (int j = 0; j < 6; j++) {
                    v8 d[6], r[6];
                    for (int i = 0; i < 6; i++) d[i] = NAME(ldn)(s[i * 6 + j] + c, n);
                    NAME(bt)(d, r);
                    for (int i = 0; i < 6; i++) t[i][j] = r[i];
                }
                for (int i = 0; i < 6; i++) {
                    v8 r[6];
                    NAME(bt)(t[i], r);  // row i of (Bᵀ d) B
                    for (int j = 0; j < 6; j++) NAME(stn)(out + c + (i * 6 + j) * stride, r[j], n);
                }
            }
        }
    }
}

static void NAME(output)(const float *m, long h, long w, long cout, long tilesW, long ty0, long t0, long t1,
                         long stride, const float *bias, float *y) {
    for (long t = t0; t < t1; t++) {
        {
            const long ty = ty0 + t / tilesW, tx = t % tilesW;
            const float *src = m + t * cout;
            const long y0 = 4 * ty, x0 = 4 * tx;
            const long rows = h - y0 < 4 ? h - y0 : 4, cols = w - x0 < 4 ? w - x0 : 4;
            for (long c = 0; c < cout; c += 8) {
                const long n = cout - c < 8 ? cout - c : 8;
                v8 sc[4][6];  // Aᵀ M, by columns
                for (int j = 0; j < 6; j++) {
                    v8 col[6], r[4];
                    for (int i = 0; i < 6; i++) col[i] = NAME(ldn)(src + c + (i * 6 + j) * stride, n);
                    NAME(at)(col, r);
                    for (int i = 0; i < 4; i++) sc[i][j] = r[i];
                }
                const v8 b = NAME(ldn)(bias + c, n);
                for (long i = 0; i < rows; i++) {
                    v8 r[4];
                    NAME(at)(sc[i], r);  // row i of (Aᵀ M) A
                    float *dst = y + ((y0 + i) * w + x0) * cout + c;
                    for (long j = 0; j < cols; j++) NAME(stn)(dst + j * cout, r[j] + b, n);
                }
            }
        }
    }
}
