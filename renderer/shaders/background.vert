// One quad per sample covering its cell, on the far plane: with LEQUAL depth it fills only
// the pixels nothing else covered.
in vec2 in_corner;
in vec4 i_bg_info;  // mode, image layer, gradient angle, noise scale
in vec4 i_bg_a;     // colour 1 (sRGB), noise offset
in vec4 i_bg_b;     // colour 2 (sRGB), cell
in vec4 i_bg_crop;

out vec2 v_local;
flat out vec4 v_info;
flat out vec4 v_a;
flat out vec3 v_b;
flat out vec4 v_crop;

void main() {
    v_local = in_corner;
    v_info = i_bg_info;
    v_a = i_bg_a;
    v_b = i_bg_b.rgb;
    v_crop = i_bg_crop;
    gl_Position = to_cell(vec4(in_corner * 2.0 - 1.0, 0.99999, 1.0), i_bg_b.w);
}
