// Camera effects on the GPU, two passes over the output-size atlas (SIZE px cells):
//   PASS 1: each output pixel the mean of its SUPERSAMPLE x SUPERSAMPLE drawn samples (the anti-aliasing
//           filter), times the white balance gains, blurred along x;
//   PASS 2: blurred along y, plus the sample's sensor noise; written to 8 bits.
// The Gaussian is separable, so two passes of 2r + 1 taps do what one of (2r + 1)^2 would. Taps past the
// image's edge repeat its edge pixel, as scipy's mode "nearest" does.
flat in vec4 v_cam0;
flat in vec3 v_wb;
flat in vec3 v_seed;
uniform sampler2D u_src;  // PASS 1: the drawn (supersampled) atlas; PASS 2: pass 1's float atlas
out vec4 f_color;

int blur_radius(float sigma) { return sigma > 0.05 ? int(3.0 * sigma + 0.5) : 0; }

float tap_weight(int k, float sigma) { return exp(-0.5 * float(k * k) / (sigma * sigma)); }

#if PASS == 1
vec3 drawn(ivec2 out_px) {
    ivec2 base = out_px * SUPERSAMPLE;
    vec3 s = vec3(0.0);
    for (int j = 0; j < SUPERSAMPLE; ++j)
        for (int i = 0; i < SUPERSAMPLE; ++i)
            s += texelFetch(u_src, base + ivec2(i, j), 0).rgb;
    return s * (1.0 / float(SUPERSAMPLE * SUPERSAMPLE));
}
#else
// 32-bit integer hash (Wellons' lowbias32): exact on every GPU, so the grain is a pure function of the seed
uint hash(uint x) {
    x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
    return x;
}

vec3 gaussian3(vec3 seed, ivec2 p) {
    uint h = hash(uint(seed.x) ^ hash(uint(seed.y) ^ hash(uint(seed.z) ^ hash(uint(p.x) | (uint(p.y) << 16)))));
    uint h1 = hash(h ^ 0x68e31da4u), h2 = hash(h1), h3 = hash(h2), h4 = hash(h3);
    vec4 u = (vec4(uvec4(h1, h2, h3, h4) >> 8u) + 0.5) * (1.0 / 16777216.0);
    vec2 r = sqrt(-2.0 * log(u.xz));  // Box-Muller: two pairs of uniforms, three normals used
    float a = 6.2831853 * u.y, b = 6.2831853 * u.w;
    return vec3(r.x * cos(a), r.x * sin(a), r.y * cos(b));
}
#endif

void main() {
    ivec2 origin = ivec2(cell_origin(v_cam0.x)) * SIZE;
    ivec2 local = ivec2(gl_FragCoord.xy) - origin;
    float sigma = v_cam0.y;
    int r = blur_radius(sigma);
    vec3 sum = vec3(0.0);
    float wsum = 0.0;
    for (int k = -r; k <= r; ++k) {
        float w = r == 0 ? 1.0 : tap_weight(k, sigma);
#if PASS == 1
        sum += w * drawn(origin + ivec2(clamp(local.x + k, 0, SIZE - 1), local.y));
#else
        sum += w * texelFetch(u_src, origin + ivec2(local.x, clamp(local.y + k, 0, SIZE - 1)), 0).rgb;
#endif
        wsum += w;
    }
    vec3 c = sum / wsum;
#if PASS == 1
    f_color = vec4(c * v_wb, 1.0);
#else
    if (v_cam0.z > 0.0) c += v_cam0.z * gaussian3(v_seed, local);
    f_color = vec4(clamp(c, 0.0, 1.0), 1.0);
#endif
}
