// Shared by every pass. Per-sample values arrive as instance attributes and flat varyings:
// on llvmpipe, shader-storage reads per fragment cost ~13x more (see docs/DESIGN.md).
uniform vec2 u_grid;  // atlas columns, rows

#ifdef TEXTURE_MODE
// Albedo constant per vertex (material colour, solid colour): the whole lit colour is computed per
// vertex and reaches the rasteriser as one varying; triangle setup cost grows with varyings.
#define PER_VERTEX_COLOUR (TEXTURE_MODE == 1 || (TEXTURE_MODE == 0 && MODEL_TEXTURE == 0))
#endif

// Lights of every sample in the batch: 4 directions, 4 colours, ambient (w = light count), sky direction
// (w = ground ambient / sky ambient): packing.py.
layout(std140) uniform Lights { vec4 lights[MAX_BATCH * LIGHT_VEC4S]; };

// A clip-space position moved into its cell of the atlas; clip distances keep it inside.
vec4 to_cell(vec4 p, float cell) {
    vec2 c = vec2(mod(cell, u_grid.x), floor(cell / u_grid.x));
    p.xy = p.xy / u_grid + p.w * (-1.0 + (2.0 * c + 1.0) / u_grid);
    return p;
}

vec2 cell_origin(float cell) {
    return vec2(mod(cell, u_grid.x), floor(cell / u_grid.x));
}

// Fractal value noise, periodic, precomputed (renderer/noise.py): one trilinear fetch.
uniform sampler3D u_noise;

float fbm(vec3 p) {
    return texture(u_noise, p * (1.0 / 8.0)).r;
}

// Display gamma 2 rather than 2.2: sqrt and a multiply instead of two pow() per channel, which
// llvmpipe computes as exp2(log2()) per pixel. renderer/packing.py converts colours the same way.
vec3 srgb_to_linear(vec3 c) { return c * c; }

// The photometric half of the 2D augmentation: contrast about mid-grey, then illumination.
vec3 adjust(vec3 c, vec2 post) { return clamp(((c - 0.5) * post.x + 0.5) * post.y, 0.0, 1.0); }
vec3 linear_to_srgb(vec3 c) { return sqrt(clamp(c, 0.0, 1.0)); }

// Blinn-Phong per vertex. Normals are turned toward the viewer: meshes in the wild have
// inconsistent winding, and one-sided lighting would leave black holes.
void light_vertex(int slot, vec3 n, vec3 view_pos, float specular, float shininess,
                  out vec3 diffuse, out vec3 spec) {
    vec3 v = normalize(-view_pos);
    n = normalize(n);
    if (dot(n, v) < 0.0) n = -n;
    int base = slot * LIGHT_VEC4S;
    vec4 ambient = lights[base + 8];
    vec4 sky = lights[base + 9];
    diffuse = ambient.rgb;
    // a hemisphere: full ambient facing the sky, sky.w of it facing the ground (skipped at 1, so that
    // renders without it keep their exact pixels)
    if (sky.w < 1.0) diffuse *= mix(sky.w, 1.0, 0.5 + 0.5 * dot(n, sky.xyz));
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
