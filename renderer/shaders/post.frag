// 2D augmentation of the rendered image: one affine resample + contrast + illumination per cell.
uniform sampler2D u_src;
uniform sampler2D u_src_mask;
uniform float u_cell_px;

in vec2 v_local;
flat in vec4 v_a;
flat in vec4 v_b;
flat in vec4 v_c;

layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_mask;

void main() {
    vec2 q = v_local - 0.5;
    vec2 s = vec2(dot(v_a.xy, q) + v_a.z, dot(v_b.xy, q) + v_b.z) + 0.5;
    // border pixels repeat rather than bleed in from the neighbouring cell
    s = clamp(s, 0.5 / u_cell_px, 1.0 - 0.5 / u_cell_px);
    vec2 uv = (cell_origin(v_c.z) + s) / u_grid;
    vec3 c = texture(u_src, uv).rgb;
    c = clamp(((c - 0.5) * v_c.x + 0.5) * v_c.y, 0.0, 1.0);
    f_color = vec4(c, 1.0);
    f_mask = texture(u_src_mask, uv);
}
