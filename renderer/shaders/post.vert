in vec2 in_corner;
in vec4 i_post_a;  // source <- destination affine, row 0 (cell units, about the centre)
in vec4 i_post_b;  // row 1
in vec4 i_post_c;  // contrast, illumination, cell

out vec2 v_local;
flat out vec4 v_a;
flat out vec4 v_b;
flat out vec4 v_c;

void main() {
    v_local = in_corner;
    v_a = i_post_a;
    v_b = i_post_b;
    v_c = i_post_c;
    gl_Position = to_cell(vec4(in_corner * 2.0 - 1.0, 0.0, 1.0), i_post_c.z);
}
