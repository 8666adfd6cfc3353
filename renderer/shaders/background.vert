// One quad per sample covering its cell, on the far plane: with LEQUAL depth it fills only
// the pixels nothing else covered.
in vec2 in_corner;
in vec4 i_bg_info;  // mode, image layer, gradient angle, noise scale
in vec4 i_bg_a;     // colour 1 (sRGB), noise offset
in vec4 i_bg_b;     // colour 2 (sRGB), cell
in vec4 i_bg_crop;
in vec4 i_warp0;    // source <- destination affine of the 2D augmentation (cell units), contrast
in vec4 i_warp1;    // row 1, illumination

out vec2 v_local;
flat out vec4 v_info;
flat out vec4 v_a;
flat out vec3 v_b;
flat out vec4 v_crop;
flat out vec2 v_post;

void main() {
    // the quad always fills its cell; its pattern is sampled where the warp takes each pixel from
    vec2 q = in_corner - 0.5;
    v_local = vec2(dot(i_warp0.xy, q) + i_warp0.z, dot(i_warp1.xy, q) + i_warp1.z) + 0.5;
    v_post = vec2(i_warp0.w, i_warp1.w);
    v_info = i_bg_info;
    v_a = i_bg_a;
    v_b = i_bg_b.rgb;
    v_crop = i_bg_crop;
    gl_Position = to_cell(vec4(in_corner * 2.0 - 1.0, 0.99999, 1.0), i_bg_b.w);
}
