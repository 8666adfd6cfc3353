// Shared by every pass. Per-sample values arrive as instance attributes and flat varyings:
// on llvmpipe, shader-storage reads per fragment cost ~13x more (see docs/DESIGN.md).
uniform vec2 u_grid;  // atlas columns, rows

// Lights of every sample in the batch: 4 directions, 4 colours, ambient (w = light count).
layout(std140) uniform Lights { vec4 lights[MAX_BATCH * 9]; };

// A clip-space position moved into its cell of the atlas; clip distances keep it inside.
vec4 to_cell(vec4 p, float cell) {
    vec2 c = vec2(mod(cell, u_grid.x), floor(cell / u_grid.x));
    p.xy = p.xy / u_grid + p.w * (-1.0 + (2.0 * c + 1.0) / u_grid);
    return p;
}

vec2 cell_origin(float cell) {
    return vec2(mod(cell, u_grid.x), floor(cell / u_grid.x));
}

float hash13(vec3 p) {
    p = fract(p * 0.1031);
    p += dot(p, p.zyx + 31.32);
    return fract((p.x + p.y) * p.z);
}

float value_noise(vec3 p) {
    vec3 i = floor(p);
    vec3 f = fract(p);
    f = f * f * (3.0 - 2.0 * f);
    float n000 = hash13(i), n100 = hash13(i + vec3(1, 0, 0));
    float n010 = hash13(i + vec3(0, 1, 0)), n110 = hash13(i + vec3(1, 1, 0));
    float n001 = hash13(i + vec3(0, 0, 1)), n101 = hash13(i + vec3(1, 0, 1));
    float n011 = hash13(i + vec3(0, 1, 1)), n111 = hash13(i + vec3(1, 1, 1));
    return mix(mix(mix(n000, n100, f.x), mix(n010, n110, f.x), f.y),
               mix(mix(n001, n101, f.x), mix(n011, n111, f.x), f.y), f.z);
}

float fbm(vec3 p) {
    return 0.55 * value_noise(p) + 0.3 * value_noise(p * 2.03 + 17.0) + 0.15 * value_noise(p * 4.01 + 41.0);
}

vec3 srgb_to_linear(vec3 c) { return pow(c, vec3(2.2)); }
vec3 linear_to_srgb(vec3 c) { return pow(clamp(c, 0.0, 1.0), vec3(1.0 / 2.2)); }

// Blinn-Phong per vertex. Normals are turned toward the viewer: meshes in the wild have
// inconsistent winding, and one-sided lighting would leave black holes.
void light_vertex(int slot, vec3 n, vec3 view_pos, float specular, float shininess,
                  out vec3 diffuse, out vec3 spec) {
    vec3 v = normalize(-view_pos);
    n = normalize(n);
    if (dot(n, v) < 0.0) n = -n;
    int base = slot * 9;
    vec4 ambient = lights[base + 8];
    diffuse = ambient.rgb;
    spec = vec3(0.0);
    int count = int(ambient.w);
    for (int i = 0; i < count; ++i) {
        vec3 l = lights[base + i].xyz;
        vec3 c = lights[base + 4 + i].rgb;
        float d = max(dot(n, l), 0.0);
        diffuse += c * d;
        if (d > 0.0) spec += c * specular * pow(max(dot(n, normalize(l + v)), 0.0), shininess);
    }
}
